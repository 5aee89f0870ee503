// The waiting modal after "start": what the server is waiting for (sent, delivered to the pump, a person
// at the pump accepting), a countdown from the confirmation timeout, Cancel, and a clear message for each
// ending: confirmed with matching read-back (closes, monitoring begins), parameter mismatch or unverified
// (stays open with ordered and reported values side by side), rejected, timed out, cancelled (why, and "told to
// clear its screen" only once a STOP is queued), or a lost connection. A START not acknowledged in time is no
// ending: the window says so and follows the order until its own outcome.

import { ACTIVE_SESSION_STATUSES, EVENTS, ON_PUMP_SESSION_STATUSES } from "./protocol.js";
import { getJson, postJson } from "./http.js";
import { fixed, mlMinToMlH, serverNowMs } from "./format.js";
import { confirmedBeforeARestart, mismatchSeenRunning, readBackOf, renderReadBack } from "./readback.js";

const POLL_AFTER_DEADLINE_MS = 3000;
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
  rejected: "The pump rejected the infusion: someone at the pump pressed Reject. Nothing is running.",
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
  cleared: "The pump was told to clear its screen.",
  unacknowledged: "Not acknowledged by the pump's network yet: the pump may still receive the start. Waiting for it to confirm, or for the time-out.",
  commandEnded: "The start command ended; the order is still pending. Waiting for the pump to confirm, or for the time-out.",
  connection: "Connection to the server lost: the pump may still accept. Reconnecting…",
};
const RETRY = new Set(["rejected", "timeout", "interrupted"]);
// While the order is pending the window follows it, whatever became of its START command: the broker may still
// deliver a START whose acknowledgement came late (QoS 1), and only the order's own outcome ends the window.
const FOLLOWING = new Set(["waiting", "unacknowledged"]);

export class WaitingModal {
  constructor(dialog, { monitor, live, confirmationTimeoutS, onConfirmed, onRetry }) {
    Object.assign(this, { dialog, monitor, live, confirmationTimeoutS, onConfirmed, onRetry });
    this.session = null;
    this.byId = (id) => dialog.querySelector(`#${id}`);
    this.byId("waiting-cancel").addEventListener("click", () => this.cancel());
    this.byId("waiting-retry").addEventListener("click", () => this.close(() => this.onRetry()));
    this.byId("waiting-close").addEventListener("click", () => this.close(() => TO_MONITOR.has(this.outcome) && this.onConfirmed()));
    dialog.addEventListener("cancel", (event) => event.preventDefault()); // Escape must not hide a pending start
    monitor.onEvent((name, payload) => this.onDeviceEvent(name, payload));
    live.onStateChange((state) => this.onConnection(state));
  }

  open(session) {
    this.session = session;
    this.deadline = this.deadlineFrom(session.createdAt); // until its START is published (the server's rule too)
    this.polled = false;
    this.setOutcome("waiting", "");
    renderReadBack(this.byId("waiting-readback"), null);
    for (const step of this.dialog.querySelectorAll("[data-wait]")) step.dataset.done = "false";
    this.mark("sent", "active");
    this.dialog.showModal();
    this.byId("waiting-cancel").focus();
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
    this.catchUp();
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
    if (name === EVENTS.deviceCommand && this.isClearingStop(payload.command)) this.saidCleared();
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
      this.setOutcome("unacknowledged", message); // not an ending: the order's own outcome ends the window
    }
  }

  /** The STOP that clears this order's confirm screen (a cancel's): only once one is queued is the nurse told so,
   * and never once it was withdrawn unsent (`superseded`: the pump started infusing before it went out). */
  isClearingStop(command) {
    return this.outcome === "cancelled" && command?.command === "STOP_INFUSION" &&
      command.infusionId === this.session?.infusionId && command.state !== "superseded";
  }

  saidCleared() {
    const message = this.byId("waiting-message");
    // the session's reason may say it already (the server's words: "the pump is told to clear its screen")
    if (!/clear its screen/i.test(message.textContent)) message.textContent += ` ${MESSAGES.cleared}`;
  }

  onSession(session) {
    this.session = { ...this.session, ...session };
    if (session.deliveredAt) {
      this.mark("sent", "done");
      this.delivered();
    }
    if (ON_PUMP_SESSION_STATUSES.has(session.status)) {
      renderReadBack(this.byId("waiting-readback"), this.session);
      this.finish(OUTCOME_FOR_READBACK[readBackOf(this.session)]);
    } else if (session.status === "rejected") this.finish("rejected");
    else if (session.status === "timed_out") this.finish("timeout", session.reason);
    else if (session.status === "cancelled") this.finishCancelled(session.reason);
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
    if (!this.session || !["waiting", "unacknowledged", "connection"].includes(this.outcome)) return;
    if (state !== "live") {
      this.setOutcome("connection", MESSAGES.connection);
    } else if (this.outcome === "connection") {
      this.setOutcome("waiting", "");
      this.reread(); // the snapshot only holds active sessions: ask for this one in case it ended meanwhile
    }
  }

  async reread() {
    const { ok, body } = await getJson(`/api/infusions/${encodeURIComponent(this.session.infusionId)}/`);
    if (ok && FOLLOWING.has(this.outcome)) this.onSession(body.session);
  }

  tick() {
    const left = Math.max(0, Math.ceil((this.deadline - serverNowMs()) / 1000));
    this.byId("waiting-countdown").textContent = left > 0 ? `${left} s` : "waiting for the server…";
    if (left === 0 && !this.polled && serverNowMs() > this.deadline + POLL_AFTER_DEADLINE_MS) {
      this.polled = true;
      this.reread();
    }
  }

  async cancel() {
    const button = this.byId("waiting-cancel");
    button.disabled = true;
    const { ok, body } = await postJson(`/api/infusions/${encodeURIComponent(this.session.infusionId)}/cancel/`);
    button.disabled = false;
    if (ok) this.onSession(body.session);
    else {
      this.byId("waiting-message").textContent = body.message ?? "The start could not be cancelled.";
      this.reread(); // no longer pending (it ended otherwise meanwhile): the window ends on what it became
    }
  }

  finish(outcome, detail) {
    clearInterval(this.timer);
    this.polled = false;
    this.markEnding(outcome);
    if (outcome === "confirmed") {
      this.setOutcome("confirmed", "");
      this.close(() => this.onConfirmed());
      return;
    }
    const message = this.readBackMessage(outcome);
    this.setOutcome(outcome, detail ? `${message} (${detail})` : message);
  }

  /** A mismatch or unverified ending in the words of what it rests on: a rate seen in the pump's progress is not a
   * confirmation, and what the pump confirmed before a restart is not what it runs now. */
  readBackMessage(outcome) {
    const seen = outcome === "mismatch" ? mismatchSeenRunning(this.session) : null;
    if (seen) {
      return `The pump is running ${fixed(mlMinToMlH(seen.flowRateMlMin), 1, "mL/h")}, not the order's rate ` +
        "(seen in its progress). Check the pump now.";
    }
    if (outcome === "unverified" && confirmedBeforeARestart(this.session)) return MESSAGES.unverifiedResumed;
    if (outcome === "unverified" && this.session?.parametersUnreadable === true) return MESSAGES.unverifiedUnreadable;
    if (outcome === "mismatch" && this.session?.runningEvidence !== "confirmation") return MESSAGES.mismatchOnEvidence;
    return MESSAGES[outcome];
  }

  /** Cancelled: why (a nurse, or the pump running an older order instead), and the STOP only if one was queued. */
  finishCancelled(reason) {
    this.finish("cancelled");
    if (reason) this.byId("waiting-message").textContent = `The start was cancelled (${reason}).`;
    for (const command of this.monitor.commands.values()) if (this.isClearingStop(command)) this.saidCleared();
  }

  setOutcome(outcome, message) {
    this.outcome = outcome;
    this.dialog.dataset.outcome = outcome;
    this.byId("waiting-message").textContent = message;
    const ended = !["waiting", "unacknowledged", "connection"].includes(outcome);
    this.byId("waiting-cancel").hidden = ended;
    this.byId("waiting-retry").hidden = !RETRY.has(outcome);
    this.byId("waiting-close").hidden = !ended;
    this.byId("waiting-close").textContent = TO_MONITOR.has(outcome) ? "Go to the monitor" : "Close";
    this.dialog.querySelector(".spinner").hidden = ended;
    this.dialog.querySelector(".countdown").hidden = ended; // a countdown frozen at "6 s" reads as still waiting
    if (ended) (RETRY.has(outcome) ? this.byId("waiting-retry") : this.byId("waiting-close")).focus();
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
    then?.();
  }
}
