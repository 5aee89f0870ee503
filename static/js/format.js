// Units, times and staleness as the pages show them. The wire speaks mL/min; pages show mL/h.
// Times are shown in the server's configured time zone; device uptime is never shown as a clock time.

const MINUTES_PER_HOUR = 60;

export function readPageData(id = "page-data") {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}

/** Server clock minus browser clock (ms), so ages are computed on the server's clock. */
let clockOffsetMs = 0;
export function setServerNow(isoString) {
  const server = Date.parse(isoString);
  if (!Number.isNaN(server)) clockOffsetMs = server - Date.now();
}
export function serverNowMs() {
  return Date.now() + clockOffsetMs;
}

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** A legacy `progressPercent` may be `{time, volume}`: use the volume. */
export function percentOf(value) {
  if (value && typeof value === "object") value = value.volume ?? value.time;
  return isNumber(value) ? Math.max(0, Math.min(100, value)) : null;
}

export function mlMinToMlH(mlMin) {
  return isNumber(mlMin) ? mlMin * MINUTES_PER_HOUR : null;
}

export function fixed(value, digits = 1, unit = "") {
  if (!isNumber(value)) return "—";
  const text = value.toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit ? `${text} ${unit}` : text;
}

export function duration(minutes) {
  if (!isNumber(minutes)) return "—";
  const total = Math.max(0, Math.round(minutes));
  const hours = Math.floor(total / 60);
  const rest = total % 60;
  if (hours === 0) return minutes < 1 && minutes > 0 ? "< 1 min" : `${rest} min`;
  return `${hours} h ${String(rest).padStart(2, "0")} min`;
}

let timeZone = "UTC";
export function setTimeZone(zone) {
  if (zone) timeZone = zone;
}

/** A server (wall-clock) ISO time as HH:MM:SS in the configured zone; anything else is shown as "—". */
export function clock(isoString, { withDate = false } = {}) {
  if (typeof isoString !== "string") return "—";
  const moment = Date.parse(isoString);
  if (Number.isNaN(moment)) return "—";
  const options = { timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (withDate) Object.assign(options, { day: "2-digit", month: "short" });
  return new Intl.DateTimeFormat("en-GB", options).format(new Date(moment));
}

export function secondsSince(isoString) {
  const moment = Date.parse(isoString ?? "");
  return Number.isNaN(moment) ? null : Math.max(0, (serverNowMs() - moment) / 1000);
}

export function ago(seconds) {
  if (!isNumber(seconds)) return "never";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/**
 * Connectivity as the browser sees it now: the server's word, unless the last receive time says the
 * pump has gone quiet (a pump without presence, or any running pump, must be heard every heartbeat).
 */
/** Whether the bridge is alive and holds the broker; while it is not, no pump may look online. */
let monitoringHealthy = true;
export function setMonitoringHealthy(healthy) { monitoringHealthy = Boolean(healthy); }

export function connectivityNow({ connectivity, lastSeenAt, hasPresence, pumpState }, heartbeatTimeoutS) {
  if (connectivity === "offline" || connectivity === "unknown" || !lastSeenAt) return connectivity || "unknown";
  if (!monitoringHealthy) return "stale"; // we cannot hear the pumps: a quiet pump must never look healthy
  const age = secondsSince(lastSeenAt);
  const mustBeHeard = !hasPresence || pumpState === "running";
  if (mustBeHeard && age !== null && age > heartbeatTimeoutS) return "stale";
  return connectivity === "stale" && !(age !== null && age <= heartbeatTimeoutS) ? "stale" : "online";
}

export const CONNECTIVITY_LABEL = { online: "Online", stale: "Stale", offline: "Offline", unknown: "Never heard" };
export const PRIORITY_LABEL = { high: "High", medium: "Medium", low: "Low" };
export const SESSION_LABEL = {
  pending: "Waiting for the pump",
  running: "Running",
  paused: "Paused",
  completed: "Completed",
  stopped: "Stopped",
  rejected: "Rejected at the pump",
  timed_out: "Not confirmed in time",
  cancelled: "Cancelled",
};
export const COMMAND_LABEL = {
  START_INFUSION: "Start",
  PAUSE_INFUSION: "Pause",
  RESUME_INFUSION: "Resume",
  STOP_INFUSION: "Stop",
};

export function humanType(type) {
  return String(type || "alarm").replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}
