import {
  ACTIVE_SESSION_STATUSES, INFUSING_PUMP_STATES, ON_PUMP_SESSION_STATUSES, UNSETTLED_COMMAND_STATES,
} from "./protocol.js";
import { serverNowMs } from "./page_clock.js";
// Units, times and staleness as the pages show them. The wire speaks mL/min; pages show mL/h.
// Times are shown in the server's configured time zone; device uptime is never shown as a clock time.

const MINUTES_PER_HOUR = 60;

export function readPageData(id = "page-data") {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}

// The server's clock, estimated on the page clock (page_clock.js): every age is worked out on it.
export { noteServerTime, pageClockMs, serverNowMs, setServerNow } from "./page_clock.js";

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

/** A rate or volume to three significant figures, with one to three decimals: 0.14 → "0.14", 0.125 → "0.125", 0.047
 * → "0.047", 7.5 → "7.5", 60 → "60.0", 1200 → "1,200.0". A small syringe rate is never rounded to one decimal (0.14 is
 * not 0.1, and a pump at 0.10 does not read like an order of 0.14); devices/templatetags/units.py is the same rule. */
export function significant(value, unit = "") {
  if (!isNumber(value)) return fixed(value, 1, unit);
  const text = value.toLocaleString("en-GB", { minimumFractionDigits: 1, maximumFractionDigits: decimalsFor(value) });
  return unit ? `${text} ${unit}` : text;
}

/** An order's figures in one line (`order` in the wire's shape: the session's, or the wizard's form): "120.0 mL/h,
 * 30.0 mL, 15.0 min, bolus off". The rate in mL/h as typed: a stored 1.666667 mL/min reads 100.0 mL/h again. */
export function orderFigures(order) {
  const bolus = order?.bolus?.enabled ? `bolus ${exact(order.bolus.volumeMl, "mL")}` : "bolus off";
  return [exact(mlMinToMlH(order?.flowRateMlMin), "mL/h"), exact(order?.plannedVolumeMl, "mL"),
    exact(order?.plannedTimeMin, "min"), bolus].join(", ");
}

/** An order's figure as the clinician typed it, to three decimals (one at least): 0.125 → "0.125", 12.34 → "12.34",
 * 250 → "250.0". The wizard's review shows what will be sent; rounding a typed 0.125 mL to "0.13" would not be it. */
export function exact(value, unit = "") {
  if (!isNumber(value)) return fixed(value, 1, unit);
  const text = value.toLocaleString("en-GB", { minimumFractionDigits: 1, maximumFractionDigits: 3 });
  return unit ? `${text} ${unit}` : text;
}

/** `exact`'s figure as a number input holds it, without grouping or a trailing zero: 0.10344 -> "0.103", 15 -> "15". */
export function exactNumber(value) {
  return value.toLocaleString("en-US", { maximumFractionDigits: 3, useGrouping: false });
}

/** The decimals that give `value` three significant figures, from one to three. */
function decimalsFor(value) {
  const magnitude = isNumber(value) && value !== 0 ? Math.floor(Math.log10(Math.abs(value))) : 0;
  return Math.min(3, Math.max(1, 2 - magnitude));
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

/** An age as a page shows it; whole units rounded down, on a clock that never runs behind the server's. */
export function ago(seconds) {
  if (!isNumber(seconds)) return "never";
  return `${span(seconds)} ago`;
}

/** A span of time: "14 s", "3 min", "2 h 05 min". */
export function span(seconds) {
  if (!isNumber(seconds)) return "—";
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 90) return `${whole} s`;
  if (whole < 5400) return `${Math.floor(whole / 60)} min`;
  const minutes = Math.floor(whole / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** "Last heard 35 s ago" / "Never heard": the one wording of overview and monitor. */
export function lastHeard(lastSeenAt) {
  return lastSeenAt ? `Last heard ${ago(secondsSince(lastSeenAt))}` : "Never heard";
}

/**
 * What the overview's card and the monitor's status line both say about when a pump was last heard: "Live"
 * while reports flow, "Connected · last heard 68 s ago" for a quietly connected pump with presence (normal
 * while idle or paused), else "Last heard 68 s ago" / "Never heard".
 */
export function heardText({ lastSeenAt, hasPresence }, connectivity) {
  const age = secondsSince(lastSeenAt);
  if (connectivity === "online" && age !== null && age < 5) return "Live";
  if (connectivity === "online" && hasPresence) return `Connected · ${lastHeard(lastSeenAt).toLowerCase()}`;
  return lastHeard(lastSeenAt);
}

/** "for 14 s": how long an alarm (or anything since `sinceIso`) has lasted, counting live. */
export function lastingFor(sinceIso) {
  const seconds = secondsSince(sinceIso);
  return seconds === null ? "" : `for ${span(seconds)}`;
}

/**
 * The volumes of one progress report, in the words and digits both pages show. Both have the decimals of the whole
 * volume's three significant figures (a 2 mL syringe: 0.05 mL infused, never 0.0); the remaining volume shown is the
 * rounded total less the rounded infused volume, so the two always add up (0.15 + 99.85 reads 0.2 + 99.8, never
 * 0.2 + 99.9). A volume alone is shown as `significant` shows it.
 */
export function volumeFacts({ deliveredVolumeMl, volumeRemainingMl, progressPercent } = {}) {
  const percent = percentOf(progressPercent);
  const percentText = fixed(percent, 0, "%");
  if (!isNumber(deliveredVolumeMl) || !isNumber(volumeRemainingMl)) {
    return { percent, infused: significant(deliveredVolumeMl, "mL"), remaining: significant(volumeRemainingMl, "mL"), percentText };
  }
  const digits = decimalsFor(deliveredVolumeMl + volumeRemainingMl);
  const rounded = (value) => Number(fixedNumber(value, digits)); // as `fixed` rounds what it shows
  const remaining = Number((rounded(deliveredVolumeMl + volumeRemainingMl) - rounded(deliveredVolumeMl)).toFixed(digits));
  return { percent, infused: fixed(deliveredVolumeMl, digits, "mL"), remaining: fixed(remaining, digits, "mL"), percentText };
}

/**
 * The volumes once the pump's delivered count went back (a reboot or a reset counting from 0 again: the session's
 * `deliveredBeforeRunMl`): what was delivered in all, never only the pump's count, and what of the order that leaves;
 * null if the count never went back or the progress is not the session's (review 27, finding 2). The volume in all is
 * the server's count (`progress.deliveredInAllMl`), never the pump's optional `deliveredVolumeMl` summed: a pump
 * reporting only what remains was shown "—" infused and its own remaining (review 29, finding 4).
 */
export function deliveredInAllFacts(progress, session) {
  const before = session?.deliveredBeforeRunMl;
  const inAll = progress?.deliveredInAllMl;
  if (!isNumber(before) || !isNumber(inAll) || progress.infusionId !== session.infusionId) return null;
  const counted = Math.max(0, inAll - before);
  const planned = session.order?.plannedVolumeMl;
  if (!isNumber(planned) || planned <= 0) return null;
  const percent = Math.min(100, (100 * inAll) / planned);
  const over = inAll > planned ? ` (${significant(inAll - planned, "mL")} over it)` : "";
  return {
    percent,
    percentText: fixed(percent, 0, "%"),
    infused: `${significant(inAll, "mL")} in all (${significant(before, "mL")} before the pump's count went back, ` +
      `${significant(counted, "mL")} counted since)`,
    remaining: `${significant(Math.max(0, planned - inAll), "mL")} of the order${over}`,
  };
}

/** `value` to one decimal exactly as `fixed` rounds it, as a plain number string ("1234.5"). */
function fixedNumber(value, digits) {
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false });
}

/**
 * Connectivity as the browser sees it now: the server's word, unless the last receive time says the
 * pump has gone quiet (a pump without presence, or any running pump, must be heard every heartbeat).
 */
/** Whether the bridge is alive and holds the broker, and the server answers this page's polls (bridge_watch.js); while
 * it is not, no pump may look online, nor its alarm list look complete. */
let monitoringHealthy = true;
export function setMonitoringHealthy(healthy) { monitoringHealthy = Boolean(healthy); }
export function isMonitoringHealthy() { return monitoringHealthy; }

export function connectivityNow({ connectivity, lastSeenAt, hasPresence, pumpState }, heartbeatTimeoutS) {
  if (connectivity === "offline" || connectivity === "unknown" || !lastSeenAt) return connectivity || "unknown";
  if (!monitoringHealthy) return "stale"; // we cannot hear the pumps: a quiet pump must never look healthy
  const age = secondsSince(lastSeenAt);
  const mustBeHeard = !hasPresence || pumpState === "running";
  if (mustBeHeard && age !== null && age > heartbeatTimeoutS) return "stale";
  return connectivity === "stale" && !(age !== null && age <= heartbeatTimeoutS) ? "stale" : "online";
}

/** What the pump reports doing: nothing ("—") for a pump never heard, whose stored state is only the default. */
export function reportedState(pumpState, connectivity) {
  return connectivity === "unknown" ? "—" : pumpState ?? "—";
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
  interrupted: "Interrupted",
};
export const COMMAND_STATE_LABEL = {
  queued: "waiting to be sent",
  published: "sent, not yet acknowledged by the pump's network", // queued, handed to the broker (`publishedAt`)
  sent: "sent, waiting for the pump",
  delivered: "received by the pump",
  done: "done",
  failed: "FAILED: act at the pump",
  expired: "EXPIRED: never reached the pump",
  superseded: "not needed",
};
// The bridge ends a command within half a second of its deadline; later than this, nothing is ending it.
const OVERDUE_AFTER_MS = 2000;
export const COMMAND_OVERDUE_LABEL = {
  unsent: "NOT SENT by its deadline: it can no longer reach the pump; act at the pump",
  unanswered: "NO OUTCOME by its deadline: act at the pump",
  // marked handed by the outbox (`handedAt`), its publication never recorded: paho may have had it
  handed: "NO OUTCOME by its deadline: it may have reached the pump; check the pump",
};

/** Whether a command still under way is past its `expiresAt` (on the server's clock): the bridge, which ends every
 * command at its deadline, is away (crashed, restarting), and the command can no longer be sent (review 22). */
export function commandOverdue({ state, expiresAt }) {
  if (!UNSETTLED_COMMAND_STATES.has(state) || !expiresAt) return false;
  const deadline = Date.parse(expiresAt);
  return Number.isFinite(deadline) && serverNowMs() > deadline + OVERDUE_AFTER_MS;
}

/** Whether a `queued` command may have left the server: the outbox marked it handed (`handedAt`, committed before
 * paho had it) but its publication (`publishedAt`) is not recorded: the bridge stalled or stopped in between. */
function handedUnrecorded({ state, publishedAt, handedAt }) {
  return state === "queued" && !publishedAt && Boolean(handedAt);
}

/** A command's state as a person reads it: a `queued` command the bridge handed to the broker (`publishedAt`, its
 * PUBACK not yet recorded) is sent, not "waiting to be sent": the pump may already have acted on it. One the outbox
 * marked handed (`handedAt`) whose publication is not recorded is neither: handed over, its outcome not known (review
 * 26, finding 4). One still under way past its deadline is never "waiting": it says it can no longer be sent (only if
 * never handed), or has no outcome, act at the pump. */
export function commandStateText(command) {
  const { state, publishedAt, handedAt } = command;
  const handed = handedUnrecorded(command);
  if (commandOverdue(command)) {
    const unsent = state === "queued" && !publishedAt && !handedAt;
    return COMMAND_OVERDUE_LABEL[unsent ? "unsent" : handed ? "handed" : "unanswered"];
  }
  if (handed) return `handed to the broker at ${clock(handedAt)}: outcome not yet known`;
  const shown = state === "queued" && publishedAt ? "published" : state;
  return COMMAND_STATE_LABEL[shown] ?? state;
}
/** The pump infuses and no order is on it: none, or one still pending (never confirmed, so not on the pump: a
 * busy original firmware ignores its START), which never stands in for the infusion the pump runs. */
export function isUnordered(session, pumpState) {
  const onPump = session && ON_PUMP_SESSION_STATUSES.has(session.status);
  return !onPump && INFUSING_PUMP_STATES.has(pumpState);
}
export const COMMAND_LABEL = {
  START_INFUSION: "Start",
  PAUSE_INFUSION: "Pause",
  RESUME_INFUSION: "Resume",
  STOP_INFUSION: "Stop",
};

export function humanType(type) {
  return String(type || "alarm").replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

/** What a pump is doing, in one word and one shape, so no two conditions differ only by colour. */
export const CONDITION = {
  running: { label: "Infusing", symbol: "▶" },
  pending: { label: "Waiting for pump", symbol: "⋯" },
  paused: { label: "Paused", symbol: "❚❚" },
  idle: { label: "Idle", symbol: "○" },
  stale: { label: "Stale", symbol: "?" },
  offline: { label: "Offline", symbol: "✕" },
  unknown: { label: "Never heard", symbol: "–" },
};

/** The condition of a pump: a pump we cannot hear is stale/offline/never heard whatever it last said. */
export function pumpCondition(connectivity, sessionStatus) {
  if (connectivity !== "online") return CONDITION[connectivity] ? connectivity : "unknown";
  return ACTIVE_SESSION_STATUSES.has(sessionStatus) ? sessionStatus : "idle";
}
