// The waiting modal after "start": what the server is waiting for (sent, delivered to the pump, a person
// at the pump accepting), a countdown from the confirmation timeout, Cancel, and a clear message for each
// ending: confirmed with matching read-back (closes, monitoring begins), parameter mismatch or unverified
// (stays open with ordered and reported values side by side), rejected, timed out, cancelled (why, and what became
// of the STOP clearing the pump's screen: "was told" only once it left the server), a lost connection, or monitoring
// degraded (the server cannot hear the pump). A START not acknowledged in time is no ending: the window says so and
// follows the order until its own outcome. It names the order it follows (its figures as placed), and when that is an
// earlier request's order (its reply lost, the form edited since), says so: the form's figures were not sent. The pump
// gone from her wards while it waits (moved, her access withdrawn: its stream stopped, the order no longer hers to read),
// it says so and stops waiting.

import {
  ACTIVE_SESSION_STATUSES, EVENTS, INFUSING_PUMP_STATES, ON_PUMP_SESSION_STATUSES, REFUSED_BY_THE_PUMP,
} from "./protocol.js";
import { getJson, postJson } from "./http.js";
import { asksAgainAfter } from "./live.js";
import { isolated, setSentence } from "./keyed_rows.js";
import { exact, mlMinToMlH, orderFigures, serverNowMs, significant } from "./format.js";
import { confirmedBeforeARestart, mismatchSeenRunning, readBackOf, renderReadBack } from "./readback.js";

const POLL_AFTER_DEADLINE_MS = 3000;
const CANCEL_EVENT_WAIT_MS = 5000; // a cancel's live event not in by then: the window reads the order afresh
const START_DEADLINE_EXTRA_MS = 10_000; // a START's deadline is the confirmation timeout + 10 s (the server's rule)
// A running session's read-back decides how the window ends: only a match closes it as confirmed.
const OUTCOME_FOR_READBACK = { match: "confirmed", mismatch: "mismatch", unverified: "unverified" };
const CHECK_AT_PUMP = new Set(["mismatch", "unverified"]);
const TO_MONITOR = new Set([...CHECK_AT_PUMP, "ended", "ranInterrupted"]); // "Close" goes on to the monitor
// Endings after which the pump may still run the order (it kept it across a restart, or confirmed it late): the
// window follows it, and says so if it runs.
const MAY_RUN_AFTER = new Set(["interrupted", "timeout", "cancelled", "ranInterrupted", "ended"]);
// Endings on an order the pump runs or ran (its confirmation, or its reports of infusing it): it had the order, and
// it was accepted at the pump, so every step is done. After the others nothing is waited for: no step is current.
const RAN = new Set(["confirmed", "mismatch", "unverified", "ranInterrupted", "ended"]);

const MESSAGES = {
  // A refusal in its own words (`rejectedMessage`): a person's Reject (the original firmware's only refusal), or the
  // pump's reason (busy with an infusion of its own); "Nothing is running" only while the pump reports idle.
  rejected: "The pump rejected the infusion: someone at the pump pressed Reject.",
  refused: "The pump refused the order",
  nothingRuns: "Nothing is running.",
  infusing: { running: "The pump reports an infusion running, not this order: check the pump.",
    paused: "The pump reports an infusion paused, not this order: check the pump." },
  // The session's reason follows: whether the pump was told to clear its screen, or nothing was sent (it infuses).
  timeout: "The pump did not confirm in time. The start was withdrawn.",
  mismatch: "The pump confirmed, but what it reports differs from the order. Check the pump now.",
  mismatchOnEvidence: "The pump runs this order, and what it reports differs from the order. Check the pump now.",
  unverified: "The pump started, but did not report the parameters it runs. Check its screen against the order now.",
  unverifiedUnreadable: "The pump started, but the parameters it reported could not be read. Check its screen " +
    "against the order now.",
  // the read-back's own grounds, when they are not a confirmation of this run (`readBackMessage`)
  unverifiedResumed: "The pump restarted and runs this order again, but has not reported the parameters it runs " +
    "since: what it confirmed before the restart no longer counts. Check its screen against the order now.",
  cancelled: "The start was cancelled.",
  interrupted: "The pump restarted before the start was confirmed: nothing runs from this order. Check the pump's screen, then start again.",
  ranInterrupted: "The pump ran this infusion, and it was interrupted since. Check the pump now: its record is on the monitor.",
  ended: "The pump ran this infusion, and it has ended since. Its record is on the monitor.",
  // what became of the STOP clearing the ended order's confirm screen (`clearingStopSentence`)
  clearQueued: "The message to clear its screen has not left the server yet: the order may still be on the pump's " +
    "confirm screen, where it can be accepted. Check the pump.",
  // marked handed by the outbox (`handedAt`), its publication not recorded: the bridge stalled in between
  clearHanded: "The message to clear its screen was handed to the broker, but whether it left is not known yet: the " +
    "order may still be on the pump's confirm screen, where it can be accepted. Check the pump.",
  cleared: "The pump was told to clear its screen.",
  clearFailed: "The pump could not be told to clear its screen: clear it at the pump.",
  unacknowledged: "Not acknowledged by the pump's network yet: the pump may still receive the start. Waiting for it to confirm, or for the time-out.",
  commandEnded: "The start command ended; the order is still pending. Waiting for the pump to confirm, or for the time-out.",
  connection: "Connection to the server lost: the pump may still accept. Reconnecting…",
  degraded: "The server cannot hear the pumps, or does not answer (monitoring degraded): the pump may have accepted " +
    "or rejected the order, and nobody can see it here. Check the pump's screen. Waiting for monitoring to return…",
  // its stream stopped by the server (no longer permitted), or the order no longer hers to read (404): review 46, L1
  gone: "This pump is no longer in your wards (moved to another ward, or your access to its ward was withdrawn): this " +
    "window can no longer follow the order nor cancel it, and what became of it is not shown to you. The order may " +
    "still be on the pump's confirm screen, where it can be accepted: check the pump, or tell the ward it is in now.",
};
// The pump's answer naming no order, not applied because it may be an earlier order's, held up on its way, though it
// may be this one's (`answerInDoubt`, the original firmware's): said while the order waits, never as its outcome.
const IN_DOUBT = {
  rejected: "The pump reported a Reject naming no order: it may be of the earlier order, held up on its way, or of " +
    "this one. Check at the pump: this order waits for the pump's answer to it, or its time-out.",
  received_start_command: "The pump reported receiving an order of these figures, naming none: it may be the " +
    "earlier order, held up on its way, so it is not counted as this one's. Check at the pump.",
};
const RETRY = new Set(["rejected", "timeout", "interrupted"]);
// While the order is pending the window follows it, whatever became of its START command: the broker may still
// deliver a START whose acknowledgement came late (QoS 1), and only the order's own outcome ends the window.
const FOLLOWING = new Set(["waiting", "unacknowledged", "degraded"]);
// Outcomes while the order is still pending (Cancel offered): the followed ones, and a lost connection.
const PENDING = new Set([...FOLLOWING, "connection"]);
// Endings whose server reason may say the pump "is told to clear its screen" (its STOP queued): the window says
// instead what became of that STOP.
const CLEARED_BY_STOP = new Set(["cancelled", "timeout"]);

export class WaitingModal {
  constructor(dialog, { monitor, live, confirmationTimeoutS, toldToClear, onConfirmed, onRetry, onClose, onGone }) {
    Object.assign(this, { dialog, monitor, live, confirmationTimeoutS, toldToClear, onConfirmed, onRetry, onClose,
      onGone });
    this.session = null;
    this.bridgeHealthy = true;
    this.byId = (id) => dialog.querySelector(`#${id}`);
    this.byId("waiting-cancel").addEventListener("click", () => this.cancel());
    this.byId("waiting-retry").addEventListener("click", () => this.close(() => this.onRetry()));
    this.byId("waiting-close").addEventListener("click", () => this.close(() => this.afterClose()));
    dialog.addEventListener("cancel", (event) => event.preventDefault()); // Escape must not hide a pending start
    monitor.onEvent((name, payload) => this.onDeviceEvent(name, payload));
    live.onStateChange((state) => this.onConnection(state));
    live.onStreamStopped((stop) => this.onStreamStopped(stop));
  }

  /** What "Close" leads to: the monitor after an order that runs or ran; her wards once the pump left them. */
  afterClose() {
    if (TO_MONITOR.has(this.outcome)) this.onConfirmed();
    else if (this.outcome === "gone") this.onGone?.();
  }

  /** Follow `session`; `earlier` (`{inForm}`) when it is an earlier request's order, not the one now in the form. */
  open(session, earlier = null) {
    this.session = session;
    this.sayOrder(session, earlier);
    this.sayDoubt();
    clearTimeout(this.cancelTimer);
    Object.assign(this.byId("waiting-cancel"), { disabled: false, textContent: "Cancel" });
    this.deadline = this.deadlineFrom(session.createdAt); // until its START is published (the server's rule too)
    this.polled = false;
    this.setOutcome("waiting", "");
    renderReadBack(this.byId("waiting-readback"), null);
    for (const step of this.dialog.querySelectorAll("[data-wait]")) step.dataset.done = "false";
    this.mark("sent", "active");
    // not modal: the pump's status and alarms above it (Acknowledge, Silence) and the page's banners stay in reach
    this.dialog.show();
    this.byId("waiting-cancel").focus();
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
    this.catchUp();
    if (!this.bridgeHealthy) this.onBridgeHealth(false);
  }

  /** The order this window follows, its figures as placed; an earlier request's order is said to be one, and the
   * order now in the form (`inForm`, when it differs) not sent: she cancels this one before ordering that. */
  sayOrder(session, earlier) {
    const order = session.order;
    setSentence(this.byId("waiting-order"), order ? ["Order: ", isolated(order.drug), `, ${orderFigures(order)}`] : []);
    const note = this.byId("waiting-earlier");
    note.hidden = !earlier;
    note.textContent = !earlier ? "" :
      `Your earlier order${order ? ` (${exact(mlMinToMlH(order.flowRateMlMin), "mL/h")})` : ""} was placed, ` +
      "though its reply was lost: this window follows it." +
      (earlier.inForm ? ` The order now in the form (${earlier.inForm}) was not sent: cancel this one before ` +
        "ordering that." : "");
  }

  /** What the page heard before the window opened (a START published, even confirmed, before the reply came). */
  catchUp() {
    for (const command of this.monitor.commands.values()) {
      if (this.matches(command.infusionId)) this.onCommand(command);
    }
    if (this.matches(this.monitor.session?.infusionId)) this.onSession(this.monitor.session);
  }

  /** When the server's wait from this moment ends; a missing or unreadable moment counts from now, never NaN. */
  deadlineFrom(isoString) {
    const from = Date.parse(isoString ?? "");
    return (Number.isFinite(from) ? from : serverNowMs()) + this.confirmationTimeoutS * 1000;
  }

  matches(infusionId) {
    return this.session && FOLLOWING.has(this.outcome) && infusionId === this.session.infusionId;
  }

  onDeviceEvent(name, payload) {
    if (name === EVENTS.deviceStatus && this.outcome === "rejected") this.sayRejected();
    if (name === EVENTS.deviceCommand && this.isClearingStop(payload.command)) this.sayEnded();
    if (name === EVENTS.deviceCommand && this.matches(payload.command?.infusionId)) this.onCommand(payload.command);
    else if (name === EVENTS.deviceSession && this.matches(payload.session?.infusionId)) this.onSession(payload.session);
    else if (name === EVENTS.deviceSession && this.restated(payload.session)) this.onSession(payload.session);
    else if (name === EVENTS.deviceSession && this.verifiedLater(payload.session)) this.onSession(payload.session);
    else if (name === EVENTS.deviceSession && this.runsAfterEnding(payload.session)) this.onSession(payload.session);
  }

  /** Ended (interrupted, timed out, cancelled), the order runs all the same (review 13: the window said "nothing
   * runs from this order, start again" beside a running order): the window says what runs. */
  runsAfterEnding(session) {
    return MAY_RUN_AFTER.has(this.outcome) && session?.infusionId === this.session?.infusionId &&
      ON_PUMP_SESSION_STATUSES.has(session.status);
  }

  /** Ended "unverified" (the pump reported it infusing before its confirmation: the original firmware's bolus
   * report comes first), the confirmation's read-back follows: a match or a mismatch is what the window says then. */
  verifiedLater(session) {
    return this.outcome === "unverified" && session?.infusionId === this.session?.infusionId &&
      ON_PUMP_SESSION_STATUSES.has(session.status) && readBackOf(session) !== "unverified";
  }

  /** The ended order's reason said again (its STOP clearing the pump's screen withheld before it went out: "nothing
   * was sent to the pump: it reports infusing"): the window, already ended on it, says what is true now. */
  restated(session) {
    const ended = { cancelled: "cancelled", timed_out: "timeout" }[session?.status];
    return Boolean(ended) && this.outcome === ended && session.infusionId === this.session?.infusionId;
  }

  /** The pump's answer in doubt while the order is pending (`IN_DOUBT`); nothing once it ended. */
  sayDoubt() {
    const note = this.byId("waiting-doubt");
    const text = this.session?.status === "pending" ? IN_DOUBT[this.session.answerInDoubt] ?? "" : "";
    note.hidden = !text;
    note.textContent = text;
  }

  onCommand(command) {
    if (command.command !== "START_INFUSION") return;
    // The server's wait runs from the START's publication (a START queued through a broker outage gets it all),
    // however late the broker's PUBACK: it ends START_DEADLINE_EXTRA_MS before the START's deadline, which runs from
    // the order until the START is published and from its publication then.
    const deadline = Date.parse(command.expiresAt ?? "") - START_DEADLINE_EXTRA_MS;
    if (Number.isFinite(deadline) && deadline !== this.deadline) {
      this.polled = false; // a new deadline: ask again after it if still waiting
      this.deadline = deadline;
    }
    if (["sent", "delivered", "done"].includes(command.state)) this.mark("sent", "done");
    if (["delivered", "done"].includes(command.state)) this.delivered();
    if (command.state === "failed" || command.state === "expired") {
      const unacknowledged = command.state === "failed" && !command.sentAt; // handed to the broker, no PUBACK yet
      const message = unacknowledged ? MESSAGES.unacknowledged : `${MESSAGES.commandEnded} (${command.error})`;
      // not an ending: the order's own outcome ends the window (degraded monitoring, said already, explains it)
      if (this.outcome !== "degraded") this.setOutcome("unacknowledged", message);
    }
  }

  /** The STOP that clears this ended order's confirm screen (a cancel's or a time-out's); the window follows it
   * after the ending, to say whether it left the server. */
  isClearingStop(command) {
    return CLEARED_BY_STOP.has(this.outcome) && command?.command === "STOP_INFUSION" &&
      command.infusionId === this.session?.infusionId;
  }

  /** The newest STOP clearing this order's screen the page has seen, or null. */
  clearingStop() {
    const stops = [...this.monitor.commands.values()].filter((command) => this.isClearingStop(command));
    return stops.sort((a, b) => Date.parse(a.createdAt ?? "") - Date.parse(b.createdAt ?? "")).at(-1) ?? null;
  }

  /** What became of that STOP: queued and not yet handed to the broker, "not left the server" (the order is still on
   * the pump's screen); marked handed (`handedAt`) but its publication not recorded, not known (review 26, finding 4);
   * handed over, "was told"; failed or expired, "could not be told"; withdrawn unsent
   * (`superseded`), nothing (the reason says why). No STOP seen yet: as the reason says (queued, or none sent). */
  clearingStopSentence(queuedByReason) {
    const stop = this.clearingStop();
    if (!stop) return queuedByReason ? MESSAGES.clearQueued : "";
    if (stop.state === "superseded") return "";
    if (stop.state === "failed" || stop.state === "expired") return MESSAGES.clearFailed;
    if (stop.state === "queued" && !stop.publishedAt) return stop.handedAt ? MESSAGES.clearHanded : MESSAGES.clearQueued;
    return MESSAGES.cleared;
  }

  /** The ending's message: its words, the server's reason without its "told to clear" clause, and the STOP's fate. */
  sayEnded() {
    const reason = this.endedReason ?? "";
    const queuedByReason = Boolean(this.toldToClear) && reason.endsWith(this.toldToClear);
    const why = queuedByReason ? reason.slice(0, -this.toldToClear.length).replace(/[;,\s]+$/, "") : reason;
    const head = this.outcome === "cancelled" ? "The start was cancelled" : MESSAGES.timeout.replace(/\.$/, "");
    const sentence = why ? `${head} (${why}).` : `${head}.`;
    this.byId("waiting-message").textContent = [sentence, this.clearingStopSentence(queuedByReason)].join(" ").trim();
  }

  onSession(session) {
    this.session = { ...this.session, ...session };
    this.sayDoubt();
    if (session.deliveredAt) {
      this.mark("sent", "done");
      this.delivered();
    }
    if (ON_PUMP_SESSION_STATUSES.has(session.status)) {
      renderReadBack(this.byId("waiting-readback"), this.session);
      this.finish(OUTCOME_FOR_READBACK[readBackOf(this.session)]);
    } else if (session.status === "rejected") this.finish("rejected", null, this.rejectedMessage());
    else if (session.status === "timed_out") this.finishClearing("timeout", session.reason);
    else if (session.status === "cancelled") this.finishClearing("cancelled", session.reason);
    else if (session.status === "interrupted") {
      // it ran before it was interrupted (a confirmation, or the pump's report of it infusing): never "nothing runs"
      const ran = Boolean(this.session.confirmedAt || this.session.runningEvidence);
      this.finish(ran ? "ranInterrupted" : "interrupted", session.reason);
    }
    else if (!ACTIVE_SESSION_STATUSES.has(session.status)) this.finish("ended", session.status);
    // every other ending ends the window too: it never waits on for an order that is over
  }

  delivered() {
    this.mark("delivered", "done");
    this.mark("accept", "active");
  }

  onConnection(state) {
    this.socketLive = state === "live";
    if (!this.session || !PENDING.has(this.outcome)) return;
    if (state !== "live") {
      this.setOutcome("connection", MESSAGES.connection);
    } else if (this.outcome === "connection") {
      this.resumeFollowing();
      this.reread(); // the snapshot only holds active sessions: ask for this one in case it ended meanwhile
    }
  }

  /** The bridge's health (`watchBridge`'s onHealth): while the server cannot hear the pumps, nothing the pump does
   * can reach this window; it says so instead of "waiting for a person at the pump", and re-reads the order after. */
  onBridgeHealth(healthy) {
    this.bridgeHealthy = healthy;
    if (!this.session || !PENDING.has(this.outcome) || this.outcome === "connection") return;
    if (!healthy && this.outcome !== "degraded") {
      this.setOutcome("degraded", MESSAGES.degraded);
    } else if (healthy && this.outcome === "degraded") {
      this.resumeFollowing();
      this.reread(); // the pump's answer may have been applied when the bridge came back
    }
  }

  /** Back to following the order after a lost connection or a degraded monitoring: degraded still, or waiting. */
  resumeFollowing() {
    if (this.bridgeHealthy) this.setOutcome("waiting", "");
    else this.setOutcome("degraded", MESSAGES.degraded);
  }

  async reread() {
    const { ok, status, body } = await getJson(`/api/infusions/${encodeURIComponent(this.session.infusionId)}/`);
    if (ok && FOLLOWING.has(this.outcome)) this.onSession(body.session);
    else if (status === 404 && PENDING.has(this.outcome)) this.finish("gone", null, MESSAGES.gone); // no longer hers
  }

  /** The server no longer sends this pump's events for good (not permitted to watch it: moved out of her wards, or her
   * membership of its ward ended): nothing the pump does reaches this window now, so it no longer waits. A refusal
   * asked again in a moment ("Too many requests") is no ending. */
  onStreamStopped({ deviceId, message }) {
    if (deviceId !== this.monitor.deviceId || !this.session || !PENDING.has(this.outcome)) return;
    if (!asksAgainAfter(message)) this.finish("gone", null, MESSAGES.gone);
  }

  tick() {
    const left = Math.max(0, Math.ceil((this.deadline - serverNowMs()) / 1000));
    this.byId("waiting-countdown").textContent = left > 0 ? `${left} s` : "waiting for the server…";
    if (left === 0 && !this.polled && serverNowMs() > this.deadline + POLL_AFTER_DEADLINE_MS) {
      this.polled = true;
      this.reread();
    }
  }

  /** Ask the server to cancel the order; the window ends on the session's live `device:session`, never on this
   * reply (read after newer live events, a late confirmation's "running", it would put "cancelled" over them). */
  async cancel() {
    const button = this.byId("waiting-cancel");
    button.disabled = true;
    button.textContent = "Cancelling…";
    const { ok, body } = await postJson(`/api/infusions/${encodeURIComponent(this.session.infusionId)}/cancel/`);
    if (ok) {
      // its live event normally ends the window first; a fresh read if it did not come (a dropped event)
      this.cancelTimer = setTimeout(() => this.cancelSettled(), CANCEL_EVENT_WAIT_MS);
      return;
    }
    this.cancelSettled();
    this.byId("waiting-message").textContent = body.message ?? "The start could not be cancelled.";
    this.reread(); // no longer pending (it ended otherwise meanwhile): the window ends on what it became
  }

  cancelSettled() {
    const button = this.byId("waiting-cancel");
    button.disabled = false;
    button.textContent = "Cancel";
    if (FOLLOWING.has(this.outcome)) this.reread();
  }

  finish(outcome, detail, said = null) {
    clearInterval(this.timer);
    this.polled = false;
    this.markEnding(outcome);
    if (outcome === "confirmed") {
      this.setOutcome("confirmed", "");
      this.close(() => this.onConfirmed());
      return;
    }
    const message = said ?? this.readBackMessage(outcome);
    this.setOutcome(outcome, detail ? `${message} (${detail})` : message);
  }

  /** A mismatch or unverified ending in the words of what it rests on: a rate seen in the pump's progress is not a
   * confirmation, and what the pump confirmed before a restart is not what it runs now. */
  readBackMessage(outcome) {
    const seen = outcome === "mismatch" ? mismatchSeenRunning(this.session) : null;
    if (seen) {
      return `The pump is running ${significant(mlMinToMlH(seen.flowRateMlMin), "mL/h")}, not the order's rate ` +
        "(seen in its progress). Check the pump now.";
    }
    if (outcome === "unverified" && confirmedBeforeARestart(this.session)) return MESSAGES.unverifiedResumed;
    if (outcome === "unverified" && this.session?.parametersUnreadable === true) return MESSAGES.unverifiedUnreadable;
    if (outcome === "mismatch" && this.session?.runningEvidence !== "confirmation") return MESSAGES.mismatchOnEvidence;
    return MESSAGES[outcome];
  }

  /** The refusal as the pump told it (the session's reason), then what the pump reports doing: infusing (running or
   * paused), that what it runs is not this order (review 33: a busy pump's refusal read "someone pressed Reject.
   * Nothing is running." beside its running infusion); idle and heard live, "Nothing is running" (an absence is
   * claimed only while the pump is heard); never heard, nothing of it. */
  rejectedMessage() {
    const reason = this.session?.reason ?? "";
    const head = reason.startsWith(REFUSED_BY_THE_PUMP)
      ? `${MESSAGES.refused}${reason.slice(REFUSED_BY_THE_PUMP.length)}.`
      : MESSAGES.rejected;
    const state = this.pumpStateReported();
    if (MESSAGES.infusing[state]) return `${head} ${MESSAGES.infusing[state]}`;
    return state === "idle" && this.monitor.connectivity?.() === "online" ? `${head} ${MESSAGES.nothingRuns}` : head;
  }

  /** A rejected window said again as the pump's state changes (focus left where it is). */
  sayRejected() {
    this.byId("waiting-message").textContent = this.rejectedMessage();
    this.byId("waiting-retry").hidden = !this.retryOffered("rejected");
  }

  /** What the pump last reported doing; null for a pump never heard (its stored state is only the default). */
  pumpStateReported() {
    return this.monitor.connectivity?.() === "unknown" ? null : this.monitor.status?.pumpState ?? null;
  }

  /** Retry sends the same order to the same pump: not while the pump reports infusing (it would refuse it again). */
  retryOffered(outcome) {
    return RETRY.has(outcome) && !(outcome === "rejected" && INFUSING_PUMP_STATES.has(this.pumpStateReported()));
  }

  /** Cancelled or timed out: why (a nurse, or the pump running an older order instead), and what became of the STOP
   * clearing the pump's screen, followed after the ending. */
  finishClearing(outcome, reason) {
    this.finish(outcome);
    this.endedReason = reason ?? "";
    this.sayEnded();
  }

  setOutcome(outcome, message) {
    this.outcome = outcome;
    this.dialog.dataset.outcome = outcome;
    this.byId("waiting-message").textContent = message;
    const ended = !PENDING.has(outcome);
    this.byId("waiting-cancel").hidden = ended;
    this.byId("waiting-retry").hidden = !this.retryOffered(outcome);
    this.byId("waiting-close").hidden = !ended;
    this.byId("waiting-close").textContent =
      TO_MONITOR.has(outcome) ? "Go to the monitor" : outcome === "gone" ? "Back to my wards" : "Close";
    this.dialog.querySelector(".spinner").hidden = ended;
    // a countdown frozen at "6 s" reads as still waiting; while degraded it is no longer the pump's time to answer
    this.dialog.querySelector(".countdown").hidden = ended || outcome === "degraded";
    if (ended) (this.retryOffered(outcome) ? this.byId("waiting-retry") : this.byId("waiting-close")).focus();
  }

  /** The steps as the ending makes them true: all done once the pump runs or ran the order; a rejection was delivered
   * (a person at the pump answered it); and no step stays current (bold "Waiting for a person at the pump to
   * accept" beside an order the pump runs, or one that ended). */
  markEnding(outcome) {
    if (RAN.has(outcome) || outcome === "rejected") ["sent", "delivered"].forEach((step) => this.mark(step, "done"));
    if (RAN.has(outcome)) this.mark("accept", "done");
    for (const step of this.dialog.querySelectorAll('[data-wait][data-done="active"]')) step.dataset.done = "false";
  }

  mark(step, state) {
    const item = this.dialog.querySelector(`[data-wait="${step}"]`);
    if (item && item.dataset.done !== "done") item.dataset.done = state;
  }

  close(then) {
    clearInterval(this.timer);
    if (this.dialog.open) this.dialog.close();
    this.onClose?.();
    then?.();
  }
}
