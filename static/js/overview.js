// Ward overview: every pump of the user's wards, kept live by the coalesced `ward:summary` feed.
// Staleness is recomputed here every second from `lastSeenAt`, so a card never looks live when
// updates stop arriving (the card is greyed and says when the pump was last heard).

import { EVENTS, ON_PUMP_SESSION_STATUSES } from "./protocol.js";
import {
  CONDITION, CONNECTIVITY_LABEL, connectivityNow, duration, exact, heardText, humanType, lastingFor, pumpCondition,
  readPageData, reportedState, setServerNow, setTimeZone, significant, volumeFacts,
} from "./format.js";
import { LiveConnection, watchBridge } from "./live.js";
import { alreadyShown, announceAlarm } from "./announce.js";
import { byUrgency } from "./alarm_order.js";
import { Station, stationSignedIn, stationSignedOut } from "./station.js";

const page = readPageData();
const pumps = new Map(readPageData("pumps-data").map((pump) => [pump.deviceId, pump]));
setServerNow(page.serverNow);
setTimeZone(page.timeZone);

function card(deviceId) {
  return document.querySelector(`.pump-card[data-device-id="${CSS.escape(deviceId)}"]`);
}

function setField(element, name, text) {
  const field = element.querySelector(`[data-field="${name}"]`);
  if (field && field.textContent !== text) field.textContent = text;
  return field;
}

function render(pump) {
  const element = card(pump.deviceId);
  if (!element) return;
  const connectivity = heardHere(connectivityNow(pump, page.heartbeatTimeoutS));
  pump.condition = pumpCondition(connectivity, pump.unordered ? pump.pumpState : pump.sessionStatus);
  element.dataset.connectivity = connectivity;
  setField(element, "bed", pump.bed ? `Bed ${pump.bed}` : pump.deviceId); // moved to another bed in the admin
  element.dataset.condition = pump.condition;
  setField(element, "condition-symbol", CONDITION[pump.condition].symbol);
  setField(element, "condition-label", CONDITION[pump.condition].label);
  setField(element, "connectivity", CONNECTIVITY_LABEL[connectivity] ?? connectivity);
  // A pump infusing without an order shows what it reports, as such, also while an order waits for it (the order,
  // never confirmed, is not on the pump: it is named beside it, as on the monitor); only a running pump has a live
  // rate, and a waiting order's rate is shown only while nothing runs.
  const unordered = Boolean(pump.unordered);
  const running = unordered || ON_PUMP_SESSION_STATUSES.has(pump.sessionStatus);
  const live = unordered ? pump.pumpState === "running" : pump.sessionStatus === "running";
  element.dataset.unordered = unordered ? "true" : "false";
  element.dataset.orderWaiting = pump.sessionStatus === "pending" ? "true" : "false";
  setField(element, "state", stateText(pump, unordered, connectivity));
  setField(element, "drug", unordered ? "NO ORDER" : pump.drug || "—");
  const still = pump.sessionStatus === "paused" || (unordered && pump.pumpState === "paused") ? "paused" : "—";
  const ordered = !unordered && pump.sessionStatus === "pending";
  setField(element, "rate", rateText(pump, { live, ordered, unordered, still }));
  setField(element, "remaining", live ? duration(pump.timeRemainingMin) : still);
  const facts = volumeFacts(pump);
  const percent = running && !countWentBack(pump) ? facts.percent : null; // the pump's share of its own count only
  const bar = setField(element, "bar", "");
  bar.style.width = `${percent ?? 0}%`;
  bar.parentElement.setAttribute("aria-valuenow", String(Math.round(percent ?? 0)));
  setField(element, "volumes", running ? volumesText(pump, facts) : "\u00a0");
  renderAlarm(element, pump.topAlarm, (pump.alarms?.length ?? 0) - 1);
  setField(element, "last-heard", heardText(pump, connectivity));
}

/** A pump's connectivity as this page can tell it: not heard here while the page does not receive the ward's feed
 * (socket lost, the feed stopped by the server, or back but its summary not yet in), whatever it last said, as with
 * monitoring degraded (`connectivityNow`). With the socket lost and the bridge's polls answered, the cards read
 * "Online", "Infusing" and the ward "3 infusing" beside "Reconnecting…" (review 36), and back online before the
 * ward's summary, "Idle" and "1 idle" while an occlusion was raised during the loss (review 37, finding 4): they now
 * read "Stale", and the ward "3 stale". */
function heardHere(connectivity) {
  return connectivity === "online" && !live.wardsReceiving ? "stale" : connectivity;
}

/** The rate the pump reported; the order's only as such ("ordered 120.0 mL/h"): before the pump's first progress,
 * or while its progress leaves the rate out, the order's rate is not what the pump reports (review 19). Each as the
 * monitor shows it: the pump's to three significant figures, the order's as typed (12.34 mL/h, never "12.3"). */
function rateText(pump, { live, ordered, unordered, still }) {
  const order = !unordered && pump.orderedRateMlH != null ? `ordered ${exact(pump.orderedRateMlH, "mL/h")}` : null;
  if (ordered) return order ?? "—";
  if (!live) return still;
  if (pump.rateMlH != null) return significant(pump.rateMlH, "mL/h");
  return order ? `— (${order})` : "—";
}

/** "running without an order · an order of Heparin waits for the pump": what the pump runs first, then the order
 * waiting for its confirmation (the monitor's two lines, in one). */
function stateText(pump, unordered, connectivity) {
  const waiting = pump.sessionStatus === "pending";
  if (unordered) return `${pump.pumpState} without an order${waiting ? ` · ${orderWaitingText(pump)}` : ""}`;
  return waiting ? "waiting for pump" : reportedState(pump.pumpState, connectivity);
}

function orderWaitingText(pump) {
  return `an order${pump.drug ? ` of ${pump.drug}` : ""} waits for the pump`;
}

/** Whether the pump's delivered count went back under what its order delivered (the session's
 * `deliveredBeforeRunMl`, and the server's `deliveredInAllMl`): its count, remaining and percent then say less than
 * was delivered. */
function countWentBack(pump) {
  return typeof pump.deliveredBeforeRunMl === "number" && typeof pump.deliveredInAllMl === "number";
}

/** The server's count, never the pump's optional `deliveredVolumeMl` summed (a pump reporting only what remains has
 * none: the card said "29.0 mL left" of an order 25 mL had gone into, review 29, finding 4). */
function volumesText(pump, facts) {
  if (countWentBack(pump)) {
    const since = Math.max(0, pump.deliveredInAllMl - pump.deliveredBeforeRunMl);
    return `${significant(pump.deliveredInAllMl, "mL")} infused in all ` +
      `(the pump's count went back: ${significant(since, "mL")} since)`;
  }
  const parts = [];
  if (typeof pump.deliveredVolumeMl === "number") parts.push(`${facts.infused} infused`);
  if (typeof pump.volumeRemainingMl === "number") parts.push(`${facts.remaining} left`);
  if (facts.percent !== null) parts.push(facts.percentText);
  return parts.join(" · ") || "\u00a0";
}

/** The pump's most urgent alarm (alarm_order.js), and how many more it has (listed at the station, e.g. a failed
 * page). */
function renderAlarm(element, alarm, more = 0) {
  element.dataset.alarm = alarm ? alarm.priority : "none";
  element.dataset.alarmAcknowledged = alarm?.acknowledged ? "true" : "false";
  const others = more > 0 ? ` · +${more} more alarm${more > 1 ? "s" : ""}` : "";
  const strip = setField(element, "alarm", alarm ? alarmText(alarm) + others : "");
  strip.hidden = !alarm;
}

function alarmText(alarm) {
  const label = alarm.message || humanType(alarm.type);
  const lasting = alarm.raisedAt ? ` · ${lastingFor(alarm.raisedAt)}` : "";
  const escalated = alarm.escalation && !alarm.acknowledged ? ` · ESCALATED (tier ${alarm.escalation.level})` : "";
  return `${alarm.priority.toUpperCase()}: ${label}${lasting}${escalated}${alarm.acknowledged ? " (acknowledged)" : ""}`;
}

// The counts' kinds in their order, with their words, as the server renders them before the page is live
// (devices/views/overview_before_live.py SUMMARY_PARTS).
const SUMMARY_PARTS = page.summaryParts;

/** "3 infusing · 1 high alarm · 1 medium alarm · 1 stale": the ward at a glance, recounted with every render. The
 * pumps by condition, and every active alarm by priority, acknowledged or not: counting each pump's first alarm only
 * left out a medium alarm the station sounded beside a pump's acknowledged high one (review 32, finding 6). */
function renderSummary() {
  const counts = {};
  for (const pump of pumps.values()) {
    counts[pump.condition] = (counts[pump.condition] ?? 0) + 1;
    for (const alarm of activeAlarms(pump)) counts[alarm.priority] = (counts[alarm.priority] ?? 0) + 1;
  }
  const parts = SUMMARY_PARTS.filter(([key]) => counts[key]).map(([key, word]) => {
    const plural = word.endsWith("alarm") && counts[key] > 1 ? "s" : "";
    return [key, `${counts[key]} ${word}${plural}`];
  });
  const text = parts.map(([, words]) => words).join(" · ") || "No pumps";
  const summary = document.getElementById("ward-summary");
  if (!summary || summary.textContent === text) return;
  summary.replaceChildren(
    ...parts.flatMap(([key, words], index) => {
      const part = document.createElement("span");
      part.className = "count";
      part.dataset.kind = key;
      part.textContent = words;
      return index ? [document.createTextNode(" · "), part] : [part];
    }),
  );
  if (!parts.length) summary.textContent = text;
}

/** A pump's active alarms (a summary without `alarms` has only its `topAlarm`). */
function activeAlarms(pump) {
  return pump.alarms ?? (pump.topAlarm ? [pump.topAlarm] : []);
}

function renderAll() {
  pumps.forEach(render);
  renderSummary();
  station.update(pumps.values());
}

/** The pumps a summary says are no longer this feed's: named in `left`, or not listed in a `full` summary. */
function pumpsGone({ pumps: updates = [], left = [], full = false }) {
  if (!full) return left;
  const listed = new Set(updates.map((update) => update.deviceId));
  return [...pumps.keys()].filter((deviceId) => !listed.has(deviceId));
}

function applySummary(summary) {
  const { pumps: updates = [] } = summary;
  for (const deviceId of pumpsGone(summary)) {
    // moved to another ward, its ward deleted, or itself deleted: its card (and its alarms' sound) go with it
    pumps.delete(deviceId);
    card(deviceId)?.remove();
  }
  for (const update of updates) {
    // A pump the page did not list joined the feed (moved into the ward, or registered since the page opened): the
    // station lists and sounds its alarms at once; its card comes with the page's next load.
    const known = pumps.get(update.deviceId) ?? { deviceId: update.deviceId };
    if (typeof known.seq === "number" && typeof update.seq === "number" && update.seq < known.seq) continue;
    const merged = { ...known, ...update };
    if (!("lastSeenAt" in update)) merged.lastSeenAt = known.lastSeenAt;
    pumps.set(update.deviceId, merged);
    render(merged);
    const where = merged.bed ? `bed ${merged.bed}` : merged.deviceId;
    for (const alarm of merged.alarms ?? [merged.topAlarm]) announceAlarm(alarm, where);
  }
  renderSummary();
  station.update(pumps.values());
  document.body.dataset.summaries = String(Number(document.body.dataset.summaries ?? 0) + 1);
}

/** `ward:alarm`: a pump's alarm changed; the station shows it at once, the next summary confirms it. */
function applyWardAlarm({ deviceId, seq, alarm }) {
  const pump = pumps.get(deviceId);
  if (!pump || !alarm) return;
  const others = activeAlarms(pump).filter((held) => held.id !== alarm.id);
  if (alarm.state === "active") {
    others.push({
      id: alarm.id, type: alarm.type, key: alarm.key, priority: alarm.priority, message: alarm.message,
      acknowledged: Boolean(alarm.acknowledged), raisedAt: alarm.raisedAt, lastRaisedAt: alarm.lastRaisedAt,
      alerts: alarm.alerts, escalation: alarm.escalation ?? null,
    });
  }
  pump.alarms = others.sort(byUrgency); // the order `ward:summary` sends them in: the card shows the first
  pump.topAlarm = pump.alarms[0] ?? null;
  if (typeof seq === "number" && seq > (pump.seq ?? -1)) pump.seq = seq;
  render(pump);
  if (alarm.state === "active") announceAlarm(alarm, pump.bed ? `bed ${pump.bed}` : pump.deviceId);
  renderSummary();
  station.update(pumps.values());
}

stationSignedIn();
const live = new LiveConnection({ onUnauthorized: stationSignedOut });
live.subscribeWard(page.ward, applySummary);
const station = new Station({
  live, wards: page.wards ?? [], canSilence: page.canSilence, silenceS: page.silenceS, silences: page.silences,
  monitorUrl: (deviceId) => `/devices/${encodeURIComponent(deviceId)}/`,
});
live.onWardEvent(EVENTS.wardAlarm, applyWardAlarm);
watchBridge(page.bridge, {
  url: "/api/bridge/",
  onHealth: (healthy, reachable) => {
    station.setProblem("degraded", reachable && !healthy); // the bridge's word, while the server answers
    station.setProblem("unreachable", !reachable);
  },
  onSignedOut: (signedOut) => station.setProblem("signedOut", signedOut),
});
alreadyShown([...pumps.values()].flatMap((pump) => pump.alarms ?? [pump.topAlarm]));
renderAll();
setInterval(renderAll, 1000);
// the cards say at once whether the page hears the pumps (heardHere)
live.onStateChange(renderAll);
live.onStreamStopped(renderAll);
live.onStreamResumed(renderAll);
// The ward filter submits on change (no inline handler: the Content-Security-Policy forbids them).
document.getElementById("ward-select")?.addEventListener("change", (event) => event.target.form.submit());
