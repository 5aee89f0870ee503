// One pump live: connectivity, progress and chart, alarms with Acknowledge and sound, controls with a
// confirmation step and the command's state as it moves, and the recent event log.

import { ACTIVE_SESSION_STATUSES, EVENTS, ON_PUMP_SESSION_STATUSES, UNSETTLED_COMMAND_STATES } from "./protocol.js";
import {
  CONNECTIVITY_LABEL, SESSION_LABEL, clock, connectivityNow, deliveredInAllFacts, duration, exact, heardText, isNumber,
  isUnordered, lastingFor, mlMinToMlH, reportedState, significant, volumeFacts,
} from "./format.js";
import { getJson } from "./http.js";
import { AlarmAudio } from "./alarm_audio.js";
import { AlarmList } from "./monitor_alarms.js";
import { MonitorControls } from "./monitor_controls.js";
import { Notice } from "./monitor_notice.js";
import { alreadyShown, announceAlarm } from "./announce.js";
import { VolumeChart } from "./volume_chart.js";
import { renderReadBack } from "./readback.js";
import { ANSWER_GRACE_MS } from "./live.js";

const ACTIVE = ACTIVE_SESSION_STATUSES;
const $ = (root, selector) => root.querySelector(selector);

const UNSETTLED_ORDER = [...UNSETTLED_COMMAND_STATES]; // queued, sent, delivered (devices/states.py)

/** How far a command has got: its place among the unsettled states (a `queued` one handed to the broker, with
 * `publishedAt`, past one the outbox marked handed, `handedAt`, past one still waiting to be sent), any ended state
 * after them all. A mark the outbox took back (the link refused it) is then not shown going back: the line errs to
 * "outcome not yet known" until the command is published or ends. */
function commandProgress({ state, publishedAt, handedAt }) {
  const place = UNSETTLED_ORDER.indexOf(state);
  if (place === -1) return UNSETTLED_ORDER.length;
  if (state !== "queued") return place;
  return place + (publishedAt ? 0.5 : handedAt ? 0.25 : 0);
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
      // her press replaces what was said of her last act; one that came as a new high alarm (or tier) did silenced
      // nothing, and says so beside the alarms
      onSilencePressed: (refusal) => {
        this.alarmNotice.clear();
        if (refusal) this.alarmNotice.show(`Not silenced: ${refusal}`);
      },
    });
    this.chart = new VolumeChart($(root, "#volume-chart"));
    // a refused or failed act, said beside the buttons pressed until dismissed (never in the sound's line)
    this.alarmNotice = new Notice($(root, "#alarm-notice"));
    this.controlNotice = new Notice($(root, "#control-notice"));
    this.alarmList = new AlarmList(this);
    this.controls = new MonitorControls(this);
    this.controls.wire();
    this.alarmList.wireResolve();
    this.render();
    this.loadHistory();
    live.subscribeDevice(this.deviceId, (name, payload) => this.apply(name, payload), {
      onSnapshot: (events) => this.applySnapshot(events),
      onStopped: (message) => this.stopped(message),
    });
    live.onStateChange(() => this.renderFreshness());
    setInterval(() => {
      this.renderFreshness();
      this.controls.checkDeadlines();
    }, 1000);
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
    if (name === EVENTS.deviceStatus) this.applyStatus(payload.status);
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

  /** The pump's status; the bed it is at now (edited, or a pump registered anew under its id) is the one the heading,
   * the alarm announcements and the Stop / Pause dialog name from then on. */
  applyStatus(status) {
    this.status = status;
    if (!status || !("bed" in status)) return;
    const bed = status.bed ?? "";
    this.root.dataset.bed = bed;
    const heading = $(this.root, "#mon-bed");
    if (heading) heading.textContent = bed ? `Bed ${bed} ` : "";
  }

  applyProgress(progress) {
    // last heard only moves forward: a progress received before the status this page holds (a snapshot's latest
    // progress beside a later status) never makes the pump look heard earlier than the server says
    const heard = progress?.receivedAt;
    if (heard && !(Date.parse(this.status?.lastSeenAt) > Date.parse(heard))) {
      this.status = { ...this.status, lastSeenAt: heard };
    }
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

  /** A command only moves on (queued, handed to the broker, sent, delivered, then ended): a reply read before the
   * live events that overtook it (the POST's "queued" after "done") must not show a command acted on as still
   * waiting, nor one handed to the broker as waiting to be sent. */
  applyCommand(command) {
    const known = this.commands.get(command.commandId);
    if (known && commandProgress(known) > commandProgress(command)) return;
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
    this.alarmList.render();
    this.controls.render();
    this.controls.renderCommands();
    this.renderEvents();
  }

  /** Whether this page receives the pump's events now: connected, the snapshot of this connection in (live.js), and
   * the server sends them. */
  isReceiving() {
    return this.live.isReceiving(this.deviceId) && !this.stoppedBecause;
  }

  /** The pump's connectivity as this page can tell it: a pump whose events do not reach the page is not heard here,
   * whatever it last said, as with monitoring degraded (`connectivityNow`). With the socket lost and the bridge's
   * polls answered, the badge read "Online" beside "Reconnecting…" (review 36). */
  connectivity() {
    const heard = connectivityNow(this.status ?? {}, this.page.heartbeatTimeoutS);
    return heard === "online" && !this.isReceiving() ? "stale" : heard;
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
    $(this.root, "#mon-state").textContent = reportedState(this.status?.pumpState, connectivity);
    this.alarmList.renderNone(); // "No active alarms." only while monitoring can vouch for it
    this.root.classList.toggle("values-stale", connectivity !== "online"); // online only while received
    // its session, order and figures are as last known (greyed) while not received: socket lost, or back before
    // its snapshot (review 37, finding 4), or its stream stopped
    this.root.dataset.current = this.isReceiving() ? "true" : "false";
    this.root.dataset.receiving = this.stoppedBecause ? "false" : "true";
    const notLive = $(this.root, "#mon-not-live");
    if (notLive) {
      const text = this.notLiveText();
      notLive.hidden = !text;
      if (notLive.textContent !== text) notLive.textContent = text;
    }
    this.audio.render();
  }

  /** Why this page is not receiving the pump, when the banner's word is not enough: its stream stopped by the server,
   * or, connected, its subscription unanswered for over 10 s (`live.unanswered`, the rule of the station's technical
   * alarm: review 39, finding 2, the badge read "Stale" and nothing said why). "" otherwise. */
  notLiveText() {
    if (this.stoppedBecause) {
      return `Not live: ${this.stoppedBecause}. This page no longer receives this pump's updates: what it shows may ` +
        "be out of date. Reload the page, or check the pump at the bedside.";
    }
    if (!this.live.unanswered(this.deviceId)) return "";
    return "Not live: connected, but the server has not answered this page's subscription to the pump for more than " +
      `${ANSWER_GRACE_MS / 1000} s: what it shows may be out of date. Check the pump at the bedside, and reload the ` +
      "page if it persists.";
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
        ? `The pump reports an infusion the server did not order: its own figures are shown.${this.controls.waitingText()}`
        : "";
    const order = session?.order;
    $(this.root, "#mon-ordered").textContent = order
      ? `${exact(mlMinToMlH(order.flowRateMlMin), "mL/h")} · ${exact(order.plannedVolumeMl, "mL")} · ` +
        `${duration(order.plannedTimeMin)}${order.bolus?.enabled ? ` · bolus ${exact(order.bolus.volumeMl, "mL")}` : ""}`
      : "—";
  }

  renderReadBack() {
    renderReadBack($(this.root, "#mon-readback"), ACTIVE.has(this.session?.status) ? this.session : null);
  }

  renderProgress() {
    const progress = this.progress ?? {};
    // the pump's count, unless it went back: then what was delivered in all (the session's record)
    const facts = { ...volumeFacts(progress), ...deliveredInAllFacts(progress, this.session) };
    const { percent, infused, remaining, percentText } = facts;
    $(this.root, "#mon-infused").textContent = infused;
    $(this.root, "#mon-remaining").textContent = remaining;
    $(this.root, "#mon-percent").textContent = percentText;
    // Only a running pump has a live rate and time left; paused and ended infusions say so instead.
    const state = this.unordered() ? this.status?.pumpState : this.session?.status;
    const live = state === "running";
    const still = SESSION_LABEL[state] ?? (state ? String(state) : "—");
    $(this.root, "#mon-time-left").textContent = live ? duration(progress.timeRemainingMin) : still;
    $(this.root, "#mon-rate").textContent = live ? significant(mlMinToMlH(progress.flowRate), "mL/h") : still;
    const bar = $(this.root, "#mon-bar");
    bar.style.width = `${percent ?? 0}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(Math.round(percent ?? 0)));
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
}
