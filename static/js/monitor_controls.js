// The monitor's controls: Pause / Resume / Stop, Cancel start… and End record… with their confirmation dialog, and
// the recent commands as they move. Reads the Monitor's state (monitor.js); holds none of its own.

import { ACTIVE_SESSION_STATUSES as ACTIVE, ASKED_AT_MOST_S, EVENTS } from "./protocol.js";
import { COMMAND_LABEL, CONNECTIVITY_LABEL, clock, commandOverdue, commandStateText, serverNowMs } from "./format.js";
import { postJson } from "./http.js";
import { CommandConfirmation } from "./confirm_dialog.js";

const CONTROLS_FOR_SESSION = { running: ["pause", "stop"], paused: ["resume", "stop"] };
// A command that was under way when the page lost the pump's stream and had ended by its next snapshot.
const UNSEEN_END = "ended while this page was not receiving (outcome in the log below)";
const ONLY_WHEN_ALLOWED = new Set(["end-record", "cancel"]); // hidden, not merely disabled, otherwise
const MUST_BE_CARRIED_OUT = new Set(["STOP_INFUSION", "PAUSE_INFUSION"]); // not done: a person acts at the pump
const COMMAND_KIND = { pause: "PAUSE_INFUSION", resume: "RESUME_INFUSION", stop: "STOP_INFUSION" };
// How far the page's estimate of the server's clock may run ahead of a command's `createdAt` stamped after the POST
const CLOCK_SLACK_MS = 5000;
const $ = (root, selector) => root.querySelector(selector);

export class MonitorControls {
  constructor(monitor) {
    this.monitor = monitor;
    this.sent = null; // {command, infusionId, status}: Cancel start… or End record… sent, its live event not yet seen
    this.sending = new Map(); // command ("pause") -> when pressed: a Pause, Resume or Stop whose answer has not come
    this.overdueShown = ""; // the ids of the commands shown past their deadline
  }

  /** The commands shown still under way past their deadline: the bridge, which ends them, is away. */
  overdueCommands() {
    return [...this.monitor.commands.values()].filter((command) => !command.unseenEnd && commandOverdue(command));
  }

  /** What sounds for them: the medium pattern while a Stop or Pause is past its deadline unended, until the server
   * ends it and raises `command_not_carried_out` (Daphne for one never sent, realtime/deadlines.py; the bridge, once
   * back, for one sent). */
  overdueSounds() {
    const urgent = this.overdueCommands().some((command) => MUST_BE_CARRIED_OUT.has(command.command));
    return urgent ? [{ id: "command-overdue", priority: "medium", state: "active", acknowledged: false }] : [];
  }

  /** Each second: a command whose deadline passes meanwhile is re-read as past it, and sounds. */
  checkDeadlines() {
    const overdue = this.overdueCommands().map((command) => command.commandId).join(" ");
    if (overdue === this.overdueShown) return;
    this.renderCommands();
    this.monitor.alarmList.render();
  }

  render() {
    const { session } = this.monitor;
    const allowed = new Set(this.monitor.unordered() ? ["stop"] : CONTROLS_FOR_SESSION[session?.status] ?? []);
    // While an order waits on a pump infusing its own, both: Stop for what runs, Cancel start… for the order.
    // A pending order may still be on the pump's confirm screen: it is cancelled (the screen cleared), never
    // merely ended on record.
    if (session?.status === "pending") allowed.add("cancel");
    else if (ACTIVE.has(session?.status)) allowed.add("end-record");
    if (this.monitor.stoppedBecause) allowed.clear(); // the page no longer knows the pump's state
    const { sent } = this;
    if (sent && (session?.infusionId !== sent.infusionId || session?.status !== sent.status)) this.sent = null;
    const asked = this.sent?.command; // asked once: shown, disabled, until its outcome comes as a live event
    for (const button of this.monitor.root.querySelectorAll("button[data-command]")) {
      const sending = this.sending.has(button.dataset.command); // pressed, its request not answered yet
      button.disabled = !allowed.has(button.dataset.command) || button.dataset.command === asked || sending;
      button.setAttribute("aria-busy", String(sending));
      if (ONLY_WHEN_ALLOWED.has(button.dataset.command)) button.hidden = !allowed.has(button.dataset.command);
    }
    const startLink = $(this.monitor.root, "#start-link");
    if (startLink) startLink.hidden = ACTIVE.has(session?.status);
  }

  renderCommands() {
    this.overdueShown = this.overdueCommands().map((command) => command.commandId).join(" ");
    // "could not be reached" said of a command the list now shows (its reply was lost, not its request): over
    this.monitor.controlNotice.clearIf((asked) => [...this.monitor.commands.values()].some((command) =>
      command.command === asked.command && (command.infusionId ?? null) === asked.infusionId &&
      Date.parse(command.createdAt) >= asked.since));
    const list = $(this.monitor.root, "#command-list");
    const commands = [...this.monitor.commands.values()]
      .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)))
      .slice(0, 4);
    list.replaceChildren(
      ...commands.map((command) => {
        const item = document.createElement("li");
        item.dataset.state = command.unseenEnd ? "ended-unseen" : command.state;
        item.dataset.overdue = String(!command.unseenEnd && commandOverdue(command));
        item.dataset.command = command.command;
        const who = command.by ? ` by ${command.by}` : "";
        const error = command.error ? ` (${command.error})` : "";
        item.dataset.published = command.publishedAt ? "true" : "false";
        item.dataset.handed = command.publishedAt || command.handedAt ? "true" : "false";
        const state = command.unseenEnd ? UNSEEN_END : commandStateText(command);
        const away = ["stale", "offline"].includes(command.pumpConnectivity) ? ` [pump was ${command.pumpConnectivity}]` : "";
        // at the press (`askedAt`, as her page told it), not the request's arrival; the server's own: when it queued
        const at = clock(command.askedAt ?? command.createdAt);
        item.textContent = `${COMMAND_LABEL[command.command] ?? command.command}${who} at ${at}: ${state}${error}${away}`;
        return item;
      }),
    );
  }

  wire() {
    const dialog = $(this.monitor.root, "#confirm-dialog");
    if (!dialog) return;
    const confirm = new CommandConfirmation(dialog, {
      describe: (command) => this.infusionDescription(command),
      explain: (command) => this.confirmWarning(command),
      onConfirm: (command, reason, key, infusionId) => {
        if (command === "end-record") this.endRecord(infusionId, reason);
        else if (command === "cancel") this.cancelStart(infusionId);
        else this.sendCommand(command, reason, key, infusionId);
      },
    });
    for (const button of this.monitor.root.querySelectorAll("button[data-command]")) {
      const command = button.dataset.command;
      button.addEventListener("click", () => confirm.open(command, this.infusionShown(command)));
    }
  }

  /** The infusion a command's dialog names: the order on the pump, or null for one WITHOUT an order; Cancel start…
   * names the pending order (the pump may be infusing its own meanwhile). */
  infusionShown(command) {
    const { session } = this.monitor;
    if (command === "cancel") return session?.status === "pending" ? session.infusionId : null;
    return this.monitor.unordered() ? null : session?.infusionId ?? null;
  }

  /** " An order of Heparin waits for the pump's confirmation…" beside a pump infusing its own, else "". */
  waitingText() {
    if (this.monitor.session?.status !== "pending") return "";
    return ` An order of ${this.monitor.session.order?.drug || "an unnamed drug"} waits for the pump's confirmation ` +
      "(Cancel start… withdraws it).";
  }

  /** "the infusion of Heparin for Ann Lee in bed 4 (pump PUMP_0004)": what a nurse checks before Stop. */
  infusionDescription(command) {
    const { session, deviceId } = this.monitor;
    if (this.monitor.unordered() && command !== "cancel") return `the infusion pump ${deviceId} runs WITHOUT an order`;
    const drug = session?.order?.drug || "an unnamed drug";
    const patient = session?.patient ? ` for ${session.patient}` : " (no patient recorded)";
    const bed = this.monitor.root.dataset.bed || session?.patientBed;
    return `the infusion of ${drug}${patient}${bed ? ` in bed ${bed}` : ""} (pump ${deviceId})`;
  }

  /** Said before a command is sent to a pump that is not online: it waits, and may fail or expire. */
  confirmWarning(command) {
    const connectivity = this.monitor.connectivity();
    const { session } = this.monitor;
    const waiting = command === "stop" && this.monitor.unordered() && session?.status === "pending"
      ? ` The order of ${session.order?.drug || "an unnamed drug"} waiting for this pump stays pending: once ` +
        "stopped, the pump may show its confirm screen. Use Cancel start… if that order must not run."
      : "";
    if (command === "end-record" || connectivity === "online") return waiting;
    return ` WARNING: the pump is ${CONNECTIVITY_LABEL[connectivity] ?? connectivity}; the command waits for it ` +
      `and ends failed or expired if the pump does not act in time. Act at the pump if you can.${waiting}`;
  }

  /** Send a Pause, Resume or Stop with the moment of the press (`askedAt`, on the server's clock as the page knows
   * it: a browser clock that is off does not count): the server refuses one that reaches it more than ASKED_AT_MOST_S
   * later, or after the pump reported a change, for it asked for what the screen showed then (review 46: a Resume
   * held 20 s by a stalled network resumed a line the nurse had just paused at the pump). Until the answer comes
   * the button waits (disabled) and the notice says "Sending…", then, past ASKED_AT_MOST_S, that it will be refused
   * if it arrives now: she looks at the pump instead of believing it done. */
  async sendCommand(command, reason, idempotencyKey, infusionId) {
    const { controlNotice } = this.monitor;
    controlNotice.clear(); // her next act replaces what was said of the last
    const url = `/api/devices/${encodeURIComponent(this.monitor.deviceId)}/commands/`;
    const pressedMs = serverNowMs();
    const askedAt = new Date(pressedMs).toISOString();
    const label = COMMAND_LABEL[COMMAND_KIND[command]] ?? command;
    const subject = { sending: command, askedAt };
    this.sending.set(command, askedAt);
    this.render();
    controlNotice.show(`Sending your ${label} (pressed at ${clock(askedAt)})…`, subject);
    const slow = setTimeout(() => controlNotice.subject === subject && controlNotice.show(
      `No answer yet to your ${label} (pressed at ${clock(askedAt)}): the network is slow. The server refuses a ` +
      `command that reaches it more than ${ASKED_AT_MOST_S} s after the press, so it may not be carried out: look ` +
      "at the pump, and act there if it cannot wait.", subject), ASKED_AT_MOST_S * 1000);
    // The infusion the dialog named: if another is on the pump by now, the server refuses (409 infusion_changed).
    const since = pressedMs - CLOCK_SLACK_MS;
    const { ok, status, body } = await postJson(url, { command, reason, idempotencyKey, infusionId, askedAt });
    clearTimeout(slow);
    if (this.sending.get(command) === askedAt) this.sending.delete(command);
    if (controlNotice.subject === subject) controlNotice.clear(); // answered: the list or a refusal says the rest
    this.render();
    if (ok) this.monitor.apply(EVENTS.deviceCommand, { deviceId: this.monitor.deviceId, command: body.command });
    else if (status === 0) this.lostReply(command, infusionId, since, body.message);
    else {
      controlNotice.show(body.message ?? `Could not ${command} the infusion`);
      this.monitor.refreshEventsSoon(); // a refusal held up in the network is recorded in the pump's log
    }
  }

  /** The request may have reached the server though its reply did not: said so, until the list shows the command
   * (by its live event: renderCommands ends the notice then) or she dismisses it (review 22). */
  lostReply(command, infusionId, since, message) {
    const label = COMMAND_LABEL[COMMAND_KIND[command]] ?? command;
    this.monitor.controlNotice.show(`${message} The ${label} may have reached the server all the same: if it did, ` +
      "it appears in the list of commands below with its outcome.",
    { command: COMMAND_KIND[command], infusionId: infusionId ?? null, since });
    this.renderCommands(); // its live event may have come before this reply
  }

  async cancelStart(infusionId) {
    if (!infusionId) return; // the order the dialog named: if it ran meanwhile, the server refuses (409)
    const url = `/api/infusions/${encodeURIComponent(infusionId)}/cancel/`;
    await this.actOnSession("cancel", infusionId, url, {}, "Could not cancel the start");
  }

  async endRecord(infusionId, reason) {
    if (!infusionId) return; // the record the dialog named, never whichever is on the pump by now
    const url = `/api/infusions/${encodeURIComponent(infusionId)}/end-record/`;
    await this.actOnSession("end-record", infusionId, url, { reason }, "Could not end the record");
  }

  /** Ask the server to end the session `infusionId`; its button waits (disabled) until the session shown moves on.
   * The session's new state is shown by its live `device:session`, never by this reply: a reply read after newer
   * live events (a late confirmation's "running") would show an older state ("Cancelled") over them. */
  async actOnSession(command, infusionId, url, data, failure) {
    this.monitor.controlNotice.clear();
    this.sent = { command, infusionId, status: this.monitor.session?.status };
    this.render();
    const { ok, body } = await postJson(url, data); // each URL written whole: tests/test_sessions.py reads them
    if (ok) return;
    this.sent = null;
    this.monitor.controlNotice.show(body.message ?? failure);
    this.render();
  }
}
