// Ward overview: every pump of the user's wards, kept live by the coalesced `ward:summary` feed.
// Staleness is recomputed here every second from `lastSeenAt`, so a card never looks live when
// updates stop arriving (the card is greyed and says when the pump was last heard).

import {
  CONNECTIVITY_LABEL, ago, connectivityNow, duration, fixed, humanType, percentOf, readPageData,
  secondsSince, setServerNow, setTimeZone,
} from "./format.js";
import { LiveConnection, watchBridge } from "./live.js";

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
  const connectivity = connectivityNow(pump, page.heartbeatTimeoutS);
  element.dataset.connectivity = connectivity;
  setField(element, "connectivity", CONNECTIVITY_LABEL[connectivity] ?? connectivity);
  const running = pump.sessionStatus === "running" || pump.sessionStatus === "paused";
  setField(element, "state", pump.sessionStatus === "pending" ? "waiting for pump" : pump.pumpState ?? "—");
  setField(element, "drug", pump.drug || "—");
  setField(element, "rate", running || pump.sessionStatus === "pending" ? fixed(pump.rateMlH, 1, "mL/h") : "—");
  setField(element, "remaining", running ? duration(pump.timeRemainingMin) : "—");
  const percent = running ? percentOf(pump.progressPercent) : null;
  const bar = setField(element, "bar", "");
  bar.style.width = `${percent ?? 0}%`;
  bar.parentElement.setAttribute("aria-valuenow", String(Math.round(percent ?? 0)));
  setField(element, "volumes", volumesText(pump, percent, running));
  renderAlarm(element, pump.topAlarm);
  const age = secondsSince(pump.lastSeenAt);
  const heard = pump.lastSeenAt ? `Last heard ${ago(age)}` : "Never heard";
  setField(element, "last-heard", connectivity === "online" && age !== null && age < 5 ? "Live" : heard);
}

function volumesText(pump, percent, running) {
  if (!running) return "\u00a0";
  const parts = [];
  if (typeof pump.deliveredVolumeMl === "number") parts.push(`${fixed(pump.deliveredVolumeMl, 1)} mL infused`);
  if (typeof pump.volumeRemainingMl === "number") parts.push(`${fixed(pump.volumeRemainingMl, 1)} mL left`);
  if (percent !== null) parts.push(`${fixed(percent, 0)} %`);
  return parts.join(" · ") || "\u00a0";
}

function renderAlarm(element, alarm) {
  element.dataset.alarm = alarm ? alarm.priority : "none";
  element.dataset.alarmAcknowledged = alarm?.acknowledged ? "true" : "false";
  const strip = setField(element, "alarm", alarm ? alarmText(alarm) : "");
  strip.hidden = !alarm;
}

function alarmText(alarm) {
  const label = alarm.message || humanType(alarm.type);
  return `${alarm.priority.toUpperCase()}: ${label}${alarm.acknowledged ? " (acknowledged)" : ""}`;
}

function applySummary({ pumps: updates = [] }) {
  for (const update of updates) {
    const known = pumps.get(update.deviceId);
    if (!known) continue; // another ward's pump (the filter is applied on the page)
    if (typeof known.seq === "number" && typeof update.seq === "number" && update.seq < known.seq) continue;
    const merged = { ...known, ...update };
    if (!("lastSeenAt" in update)) merged.lastSeenAt = known.lastSeenAt;
    pumps.set(update.deviceId, merged);
    render(merged);
  }
  document.body.dataset.summaries = String(Number(document.body.dataset.summaries ?? 0) + 1);
}

const live = new LiveConnection();
live.subscribeWard(page.ward, applySummary);
watchBridge(page.bridge, { url: "/api/bridge/" });
for (const pump of pumps.values()) render(pump);
setInterval(() => pumps.forEach(render), 1000);
