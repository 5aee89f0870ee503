// One pump live: connectivity, progress and chart, alarms with Acknowledge and sound, controls with a
// confirmation step and the command's state as it moves, and the recent event log.

import { ACTIVE_SESSION_STATUSES, EVENTS, ON_PUMP_SESSION_STATUSES, UNSETTLED_COMMAND_STATES } from "./protocol.js";
import {
  COMMAND_LABEL, COMMAND_STATE_LABEL, CONNECTIVITY_LABEL, PRIORITY_LABEL, SESSION_LABEL, clock, connectivityNow,
  duration, fixed, heardText, humanType, isNumber, isUnordered, lastingFor, mlMinToMlH, volumeFacts,
} from "./format.js";
import { getJson, postJson } from "./http.js";
import { AlarmAudio } from "./alarm_audio.js";
import { CommandConfirmation } from "./confirm_dialog.js";
import { alreadyShown, announceAlarm } from "./announce.js";
import { VolumeChart } from "./volume_chart.js";
import { renderReadBack } from "./readback.js";

const CONTROLS_FOR_SESSION = { running: ["pause", "stop"], paused: ["resume", "stop"] };
// A command that was under way when the page lost the pump's stream and had ended by its next snapshot.
const UNSEEN_END = "ended while this page was not receiving (outcome in the log below)";
const ONLY_WHEN_ALLOWED = new Set(["end-record", "cancel"]); // hidden, not merely disabled, otherwise
const ACTIVE = ACTIVE_SESSION_STATUSES;
const $ = (root, selector) => root.querySelector(selector);

const UNSETTLED_ORDER = [...UNSETTLED_COMMAND_STATES]; // queued, sent, delivered (devices/states.py)

/** How far a command has got: its place among the unsettled states, any ended state after them all. */
function commandProgress(state) {
  const place = UNSETTLED_ORDER.indexOf(state);
  return place === -1 ? UNSETTLED_ORDER.length : place;
}

export class Monitor {
  constructor({ root, page, live }) {
    this.root = root;
    this.page = page;
    this.live = live;
    this.deviceId = root.dataset.deviceId;
    const initial = page.monitor;
    this.status = initial.status;
    this.session = initial.session;
    this.progress = initial.progress;
    this.alarms = new Map(initial.alarms.map((alarm) => [alarm.id, alarm]));
    alreadyShown(initial.alarms);
    this.commands = new Map(initial.commands.map((command) => [command.commandId, command]));
    this.events = initial.events;
    this.seq = initial.seq ?? null; // the pump's `seq` the page's state is as of
    this.snapshots = 0; // counts snapshots: a read started for one is dropped once another came
    this.stoppedBecause = null; // set when the server no longer sends this pump's events
    this.listeners = new Set();
    this.audio = new AlarmAudio({
      root,
      high: $(root, "#alarm-audio-high"),
      medium: $(root, "#alarm-audio-medium"),
      stateLabel: $(root, "#audio-state"),
      enableButton: $(root, "#audio-enable"),
      silenceButton: $(root, "#audio-silence"),
    });
    this.chart = new VolumeChart($(root, "#volume-chart"));
    this.wireControls();
    this.wireResolve();
    this.render();
    this.loadHistory();
    live.subscribeDevice(this.deviceId, (name, payload) => this.apply(name, payload), {
      onSnapshot: (events) => this.applySnapshot(events),
      onStopped: (message) => this.stopped(message),
    });
    live.onStateChange(() => this.renderFreshness());
    setInterval(() => this.renderFreshness(), 1000);
  }

  /** Call `listener(name, payload)` after each event is applied (the start wizard watches its infusion). */
  onEvent(listener) {
    this.listeners.add(listener);
  }

  apply(name, payload) {
    this.change(name, payload);
    if ([EVENTS.deviceSession, EVENTS.deviceAlarm, EVENTS.deviceCommand, EVENTS.deviceInfusionCompleted].includes(name)) {
      this.refreshEventsSoon();
    }
    this.render();
    for (const listener of this.listeners) listener(name, payload);
  }

  /** One event's change to the state held (nothing rendered). */
  change(name, payload) {
    if (typeof payload?.seq === "number" && payload.seq > (this.seq ?? -1)) this.seq = payload.seq;
    if (name === EVENTS.deviceStatus) this.status = payload.status;
    else if (name === EVENTS.deviceProgress) this.applyProgress(payload.progress);
    else if (name === EVENTS.deviceSession) this.applySession(payload.session);
    else if (name === EVENTS.deviceAlarm) this.applyAlarm(payload.alarm);
    else if (name === EVENTS.deviceCommand) this.applyCommand(payload.command);
  }

  /** A whole snapshot (docs/protocol.md, "Snapshot semantics"): it replaces what the page held for the pump, in
   * one step. What it does not carry ended while the page was not subscribed: alarms cleared, the session ended
   * (how, read back as a fresh load shows it: `showLatestSession`), commands settled (their outcome unseen here). */
  applySnapshot(events) {
    const seq = events[0]?.[1]?.seq ?? null;
    const missedChanges = this.seq === null || seq !== this.seq;
    const held = { session: this.session, progress: this.progress };
    this.snapshots += 1;
    this.stoppedBecause = null;
    // the snapshot's session (if any) comes first: the same infusion keeps its chart, another starts afresh
    if (!events.some(([name]) => name === EVENTS.deviceSession)) this.session = null;
    this.progress = null;
    this.alarms = new Map();
    for (const [commandId, command] of this.commands) {
      if (UNSETTLED_COMMAND_STATES.has(command.state)) this.commands.set(commandId, { ...command, unseenEnd: true });
    }
    for (const [name, payload] of events) this.change(name, payload);
    this.seq = seq;
    if (!this.session) this.keepEndedSession(held, missedChanges);
    else if (missedChanges && this.session.infusionId === held.session?.infusionId) this.loadHistory(); // its gap
    if (missedChanges) this.refreshEventsSoon();
    this.render();
    for (const [name, payload] of events) for (const listener of this.listeners) listener(name, payload);
  }

  /** No session is active: the monitor goes on showing the last one and how it ended, as a fresh load does. */
  keepEndedSession(held, missedChanges) {
    const heldEnded = held.session && !ACTIVE.has(held.session.status);
    if (heldEnded) {
      this.session = held.session;
      if (held.progress?.infusionId === held.session.infusionId && !this.progress) this.progress = held.progress;
    }
    if (missedChanges) this.showLatestSession();
  }

  /** Read the pump's latest session (it ended while the page was away) and show it, unless a newer snapshot or a
   * session event came first. */
  async showLatestSession() {
    const [snapshot, shown] = [this.snapshots, this.session];
    const overtaken = () => snapshot !== this.snapshots || shown !== this.session;
    const history = await getJson(`/api/devices/${encodeURIComponent(this.deviceId)}/history/`);
    const infusionId = history.ok ? history.body.infusionId : null;
    if (!infusionId || overtaken()) return;
    const { ok, body } = await getJson(`/api/infusions/${encodeURIComponent(infusionId)}/`);
    const session = ok ? body.session : null;
    if (!session || ACTIVE.has(session.status) || overtaken()) return; // an active one comes as an event
    this.session = session;
    // the figures shown are this infusion's own, or the pump's own while it infuses without an order
    if (this.progress?.infusionId && this.progress.infusionId !== session.infusionId) this.progress = null;
    if (session.infusionId !== shown?.infusionId) this.loadHistory();
    this.render();
  }

  /** The server no longer sends this pump's events (`error` naming it, e.g. the right to watch it withdrawn). */
  stopped(message) {
    this.stoppedBecause = message;
    this.render();
  }

  applyProgress(progress) {
    if (progress?.receivedAt) this.status = { ...this.status, lastSeenAt: progress.receivedAt };
    // An order on the pump shows only its own progress; a pending order owns none: a pump infusing something else
    // meanwhile reports its own (no infusion), shown as such beside the waiting order.
    const onPump = this.session && ON_PUMP_SESSION_STATUSES.has(this.session.status);
    if (onPump && progress?.infusionId !== this.session.infusionId) return;
    if (this.session?.status === "pending" && progress?.infusionId) return;
    this.progress = progress;
    if (this.session?.status === "pending") return; // the pump's own figures, never charted under the order
    if (!this.session || !progress?.infusionId || progress.infusionId === this.session.infusionId) {
      this.chart.add(progress.receivedAt, progress.deliveredVolumeMl);
    }
  }

  applySession(session) {
    const changed = session.infusionId !== this.session?.infusionId;
    this.session = session;
    if (changed) {
      this.progress = null;
      this.loadHistory();
    } else if (ON_PUMP_SESSION_STATUSES.has(session.status) && this.progress && !this.progress.infusionId) {
      this.progress = null; // the pump's own figures from while it waited never become the order's
    }
  }

  /** A command only moves on (queued, sent, delivered, then ended): a reply read before the live events that
   * overtook it (the POST's "queued" after "done") must not show a command acted on as still waiting. */
  applyCommand(command) {
    const known = this.commands.get(command.commandId);
    if (known && commandProgress(known.state) > commandProgress(command.state)) return;
    this.commands.set(command.commandId, command);
  }

  applyAlarm(alarm) {
    if (alarm.state === "active") this.alarms.set(alarm.id, alarm);
    else this.alarms.delete(alarm.id);
    if (alarm.state === "active") announceAlarm(alarm, this.root.dataset.bed ? `bed ${this.root.dataset.bed}` : this.deviceId);
  }

  async loadHistory() {
    const infusionId = this.session?.infusionId;
    this.chart.reset();
    if (!infusionId) return;
    const url = `/api/devices/${encodeURIComponent(this.deviceId)}/history/?infusionId=${encodeURIComponent(infusionId)}`;
    const { ok, body } = await getJson(url);
    if (ok && body.infusionId === this.session?.infusionId) {
      this.chart.prepend(body.points.map((point) => [point.at, point.deliveredVolumeMl]));
    }
  }

  refreshEventsSoon() {
    clearTimeout(this.eventsTimer);
    this.eventsTimer = setTimeout(async () => {
      const { ok, body } = await getJson(`/api/devices/${encodeURIComponent(this.deviceId)}/events/`);
      if (ok) {
        this.events = body.events;
        this.renderEvents();
      }
    }, 400);
  }

  // ---- rendering -------------------------------------------------------------------------------

  render() {
    this.renderFreshness();
    this.renderSession();
    this.renderReadBack();
    this.renderProgress();
    this.renderAlarms();
    this.renderControls();
    this.renderCommands();
    this.renderEvents();
  }

  connectivity() {
    return connectivityNow(this.status ?? {}, this.page.heartbeatTimeoutS);
  }

  renderFreshness() {
    const connectivity = this.connectivity();
    const badge = $(this.root, "#mon-connectivity");
    badge.textContent = CONNECTIVITY_LABEL[connectivity] ?? connectivity;
    badge.dataset.connectivity = connectivity;
    this.root.dataset.connectivity = connectivity;
    const lastSeen = this.status?.lastSeenAt;
    // the card's words (one presenter), with the clock time the monitor has room for
    const heard = heardText(this.status ?? {}, connectivity);
    $(this.root, "#mon-last-heard").textContent = lastSeen ? `${heard} (at ${clock(lastSeen)})` : heard;
    for (const since of this.root.querySelectorAll("[data-lasting-since]")) {
      since.textContent = lastingFor(since.dataset.lastingSince);
    }
    const battery = this.status?.batteryLevel;
    $(this.root, "#mon-battery").textContent = isNumber(battery) ? `Battery ${battery} %` : "";
    $(this.root, "#mon-state").textContent = this.status?.pumpState ?? "—";
    const receiving = this.live.isReceiving(this.deviceId) && !this.stoppedBecause;
    const fresh = connectivity === "online" && receiving;
    this.root.classList.toggle("values-stale", !fresh);
    this.root.dataset.receiving = this.stoppedBecause ? "false" : "true";
    const notLive = $(this.root, "#mon-not-live");
    if (notLive) {
      notLive.hidden = !this.stoppedBecause;
      const text = this.stoppedBecause ? `Not live: ${this.stoppedBecause}. This page no longer receives this pump's ` +
        "updates: what it shows may be out of date. Reload the page, or check the pump at the bedside." : "";
      if (notLive.textContent !== text) notLive.textContent = text;
    }
    this.audio.render();
  }

  unordered() {
    return isUnordered(this.session, this.status?.pumpState);
  }

  renderSession() {
    const session = this.unordered() ? null : this.session;
    this.chart.setPlan(session);
    const badge = $(this.root, "#mon-session");
    badge.textContent = session
      ? SESSION_LABEL[session.status] ?? session.status
      : this.unordered() ? "Infusing WITHOUT an order" : "No infusion";
    badge.dataset.status = session?.status ?? (this.unordered() ? "unordered" : "none");
    const drug = session?.order?.drug;
    // Who moved it (remote by whom, or at the pump), once it is no longer simply pending or confirmed.
    const said = session?.reason && !["pending", "running"].includes(session.status) ||
      (session?.status === "running" && session.reason && session.reason !== "confirmed");
    const reason = said ? ` — ${session.reason}` : "";
    $(this.root, "#mon-drug").textContent = session
      ? `${drug || "Unnamed infusion"}${reason}`
      : this.unordered()
        ? `The pump reports an infusion the server did not order: its own figures are shown.${this.waitingText()}`
        : "";
    const order = session?.order;
    $(this.root, "#mon-ordered").textContent = order
      ? `${fixed(mlMinToMlH(order.flowRateMlMin), 1, "mL/h")} · ${fixed(order.plannedVolumeMl, 1, "mL")} · ` +
        `${duration(order.plannedTimeMin)}${order.bolus?.enabled ? ` · bolus ${fixed(order.bolus.volumeMl, 1, "mL")}` : ""}`
      : "—";
  }

  renderReadBack() {
    renderReadBack($(this.root, "#mon-readback"), ACTIVE.has(this.session?.status) ? this.session : null);
  }

  renderProgress() {
    const progress = this.progress ?? {};
    const { percent, infused, remaining, percentText } = volumeFacts(progress);
    $(this.root, "#mon-infused").textContent = infused;
    $(this.root, "#mon-remaining").textContent = remaining;
    $(this.root, "#mon-percent").textContent = percentText;
    // Only a running pump has a live rate and time left; paused and ended infusions say so instead.
    const state = this.unordered() ? this.status?.pumpState : this.session?.status;
    const live = state === "running";
    const still = SESSION_LABEL[state] ?? (state ? String(state) : "—");
    $(this.root, "#mon-time-left").textContent = live ? duration(progress.timeRemainingMin) : still;
    $(this.root, "#mon-rate").textContent = live ? fixed(mlMinToMlH(progress.flowRate), 1, "mL/h") : still;
    const bar = $(this.root, "#mon-bar");
    bar.style.width = `${percent ?? 0}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(Math.round(percent ?? 0)));
  }

  renderAlarms() {
    const list = $(this.root, "#alarm-list");
    const alarms = [...this.alarms.values()].sort(
      (a, b) => rank(b.priority) - rank(a.priority) || String(b.raisedAt).localeCompare(String(a.raisedAt)),
    );
    list.replaceChildren(...(alarms.length ? alarms.map((alarm) => this.alarmItem(alarm)) : [noAlarms()]));
    // A pump no longer received: its alarms stay listed (greyed, as last known) but no longer sound here.
    this.audio.update(this.stoppedBecause ? [] : alarms);
  }

  alarmItem(alarm) {
    const item = document.createElement("li");
    item.className = "alarm";
    item.dataset.priority = alarm.priority;
    item.dataset.alarmId = alarm.id;
    item.dataset.acknowledged = alarm.acknowledged ? "true" : "false";
    const title = document.createElement("strong");
    title.textContent = `${PRIORITY_LABEL[alarm.priority] ?? alarm.priority}: ${humanType(alarm.type)}`;
    const text = document.createElement("span");
    const count = alarm.count > 1 ? ` · ×${alarm.count}` : "";
    text.textContent = `${alarm.message || ""} (raised ${clock(alarm.raisedAt)}${count}) `;
    const lasting = document.createElement("span");
    lasting.className = "lasting";
    lasting.dataset.lastingSince = alarm.raisedAt;
    lasting.textContent = lastingFor(alarm.raisedAt);
    text.append(lasting);
    if (alarm.escalation && !alarm.acknowledged) {
      const escalated = document.createElement("strong");
      escalated.className = "escalated";
      escalated.textContent = ` · ESCALATED to tier ${alarm.escalation.level}: acknowledge to stop it `;
      text.append(escalated);
    }
    const ack = document.createElement("span");
    ack.className = "ack";
    if (alarm.acknowledged) {
      ack.textContent = `Acknowledged by ${alarm.acknowledged.by ?? "someone"} at ${clock(alarm.acknowledged.at)}`;
    } else if (this.page.canAcknowledge && !this.stoppedBecause) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => this.acknowledge(alarm, button));
      ack.append(button);
    }
    item.append(title, text, ack);
    if (this.page.canResolve && !this.stoppedBecause) {
      const resolve = document.createElement("button");
      resolve.type = "button";
      resolve.className = "secondary resolve";
      resolve.textContent = "Resolve…";
      resolve.addEventListener("click", () => this.openResolve(alarm));
      item.append(resolve);
    }
    return item;
  }

  // ---- resolving a stuck alarm (coded reason and a note; audited and seen by every watcher) ------------

  wireResolve() {
    const dialog = $(this.root, "#resolve-dialog");
    if (!dialog) return;
    const select = $(dialog, "#resolve-reason");
    const placeholder = new Option("Choose a reason…", "");
    select.replaceChildren(placeholder, ...(this.page.resolveReasons ?? []).map((r) => new Option(r.label, r.value)));
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "resolve") return;
      this.resolve(dialog.dataset.alarmId, Number(dialog.dataset.alerts), select.value, $(dialog, "#resolve-note").value);
    });
  }

  openResolve(alarm) {
    const dialog = $(this.root, "#resolve-dialog");
    dialog.dataset.alarmId = alarm.id;
    dialog.dataset.alerts = alarm.alerts; // the alert shown: a newer one (say at a higher priority) is refused (409)
    $(dialog, "#resolve-text").textContent = `${humanType(alarm.type)} on ${this.deviceId}: clear it by hand, with a reason.`;
    $(dialog, "#resolve-reason").value = "";
    $(dialog, "#resolve-note").value = "";
    $(dialog, "#resolve-error").textContent = "";
    dialog.returnValue = "";
    dialog.showModal();
  }

  async resolve(alarmId, alerts, reason, note) {
    const { ok, body } = await postJson(`/api/alarms/${alarmId}/resolve/`, { reason, note, alerts });
    if (ok) this.apply(EVENTS.deviceAlarm, { deviceId: this.deviceId, alarm: body.alarm });
    else this.flash(body.message ?? "Could not resolve the alarm");
  }

  async acknowledge(alarm, button) {
    button.disabled = true;
    // The alert shown: if the alarm alerted again since (say at a higher priority), the server refuses (409).
    const { ok, body } = await postJson(`/api/alarms/${alarm.id}/acknowledge/`, { alerts: alarm.alerts });
    if (ok) this.apply(EVENTS.deviceAlarm, { deviceId: this.deviceId, alarm: body.alarm });
    else {
      button.disabled = false;
      this.flash(body.message ?? "Could not acknowledge the alarm");
    }
  }

  renderControls() {
    const allowed = new Set(this.unordered() ? ["stop"] : CONTROLS_FOR_SESSION[this.session?.status] ?? []);
    // While an order waits on a pump infusing its own, both: Stop for what runs, Cancel start… for the order.
    // A pending order may still be on the pump's confirm screen: it is cancelled (the screen cleared), never
    // merely ended on record.
    if (this.session?.status === "pending") allowed.add("cancel");
    else if (ACTIVE.has(this.session?.status)) allowed.add("end-record");
    if (this.stoppedBecause) allowed.clear(); // the page no longer knows the pump's state
    for (const button of this.root.querySelectorAll("button[data-command]")) {
      button.disabled = !allowed.has(button.dataset.command);
      if (ONLY_WHEN_ALLOWED.has(button.dataset.command)) button.hidden = !allowed.has(button.dataset.command);
    }
    const startLink = $(this.root, "#start-link");
    if (startLink) startLink.hidden = ACTIVE.has(this.session?.status);
  }

  renderCommands() {
    const list = $(this.root, "#command-list");
    const commands = [...this.commands.values()]
      .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)))
      .slice(0, 4);
    list.replaceChildren(
      ...commands.map((command) => {
        const item = document.createElement("li");
        item.dataset.state = command.unseenEnd ? "ended-unseen" : command.state;
        item.dataset.command = command.command;
        const who = command.by ? ` by ${command.by}` : "";
        const error = command.error ? ` (${command.error})` : "";
        const state = command.unseenEnd ? UNSEEN_END : COMMAND_STATE_LABEL[command.state] ?? command.state;
        const away = ["stale", "offline"].includes(command.pumpConnectivity) ? ` [pump was ${command.pumpConnectivity}]` : "";
        item.textContent = `${COMMAND_LABEL[command.command] ?? command.command}${who} at ${clock(command.createdAt)}: ${state}${error}${away}`;
        return item;
      }),
    );
  }

  /** The log in a clinician's words (the server's `text`); transport detail (no text) stays in the admin. */
  renderEvents() {
    const list = $(this.root, "#event-list");
    const shown = this.events.filter((event) => event.text).slice(0, 30);
    list.replaceChildren(
      ...shown.map((event) => {
        const item = document.createElement("li");
        const time = document.createElement("time");
        time.dateTime = event.at;
        time.textContent = clock(event.at);
        item.append(time, ` ${event.text}`);
        return item;
      }),
    );
    if (!shown.length) list.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "Nothing yet." }));
  }

  flash(message) {
    $(this.root, "#audio-state").textContent = message;
  }

  // ---- controls ----------------------------------------------------------------------------------

  wireControls() {
    const dialog = $(this.root, "#confirm-dialog");
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
    for (const button of this.root.querySelectorAll("button[data-command]")) {
      const command = button.dataset.command;
      button.addEventListener("click", () => confirm.open(command, this.infusionShown(command)));
    }
  }

  /** The infusion a command's dialog names: the order on the pump, or null for one WITHOUT an order; Cancel start…
   * names the pending order (the pump may be infusing its own meanwhile). */
  infusionShown(command) {
    if (command === "cancel") return this.session?.status === "pending" ? this.session.infusionId : null;
    return this.unordered() ? null : this.session?.infusionId ?? null;
  }

  /** " An order of Heparin waits for the pump's confirmation…" beside a pump infusing its own, else "". */
  waitingText() {
    if (this.session?.status !== "pending") return "";
    return ` An order of ${this.session.order?.drug || "an unnamed drug"} waits for the pump's confirmation ` +
      "(Cancel start… withdraws it).";
  }

  /** "the infusion of Heparin for Ann Lee in bed 4 (pump PUMP_0004)": what a nurse checks before Stop. */
  infusionDescription(command) {
    if (this.unordered() && command !== "cancel") return `the infusion pump ${this.deviceId} runs WITHOUT an order`;
    const drug = this.session?.order?.drug || "an unnamed drug";
    const patient = this.session?.patient ? ` for ${this.session.patient}` : " (no patient recorded)";
    const bed = this.root.dataset.bed || this.session?.patientBed;
    return `the infusion of ${drug}${patient}${bed ? ` in bed ${bed}` : ""} (pump ${this.deviceId})`;
  }

  /** Said before a command is sent to a pump that is not online: it waits, and may fail or expire. */
  confirmWarning(command) {
    const connectivity = this.connectivity();
    const waiting = command === "stop" && this.unordered() && this.session?.status === "pending"
      ? ` The order of ${this.session.order?.drug || "an unnamed drug"} waiting for this pump stays pending: once ` +
        "stopped, the pump may show its confirm screen. Use Cancel start… if that order must not run."
      : "";
    if (command === "end-record" || connectivity === "online") return waiting;
    return ` WARNING: the pump is ${CONNECTIVITY_LABEL[connectivity] ?? connectivity}; the command waits for it ` +
      `and ends failed or expired if the pump does not act in time. Act at the pump if you can.${waiting}`;
  }

  async sendCommand(command, reason, idempotencyKey, infusionId) {
    const url = `/api/devices/${encodeURIComponent(this.deviceId)}/commands/`;
    // The infusion the dialog named: if another is on the pump by now, the server refuses (409 infusion_changed).
    const { ok, body } = await postJson(url, { command, reason, idempotencyKey, infusionId });
    if (ok) this.apply(EVENTS.deviceCommand, { deviceId: this.deviceId, command: body.command });
    else this.flash(body.message ?? `Could not ${command} the infusion`);
  }

  async cancelStart(infusionId) {
    if (!infusionId) return; // the order the dialog named: if it ran meanwhile, the server refuses (409)
    const { ok, body } = await postJson(`/api/infusions/${encodeURIComponent(infusionId)}/cancel/`);
    if (ok) this.apply(EVENTS.deviceSession, { deviceId: this.deviceId, session: body.session });
    else this.flash(body.message ?? "Could not cancel the start");
  }

  async endRecord(infusionId, reason) {
    if (!infusionId) return; // the record the dialog named, never whichever is on the pump by now
    const { ok, body } = await postJson(`/api/infusions/${encodeURIComponent(infusionId)}/end-record/`, { reason });
    if (ok) this.apply(EVENTS.deviceSession, { deviceId: this.deviceId, session: body.session });
    else this.flash(body.message ?? "Could not end the record");
  }
}

function rank(priority) {
  return { high: 3, medium: 2, low: 1 }[priority] ?? 0;
}

function noAlarms() {
  const item = document.createElement("li");
  item.className = "muted none";
  item.textContent = "No active alarms.";
  return item;
}
