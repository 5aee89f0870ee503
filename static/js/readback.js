// Read-back (contract v1.1): the order beside what the pump reported for the run under way, field by field, and one
// plain verdict: match, mismatch or unverified. The waiting window and the monitor both show it. Only what holds now
// is shown as reported: a confirmation from before a restart (the order resumed, `unconfirmedSince` set) is not what
// the pump runs, and a mismatch seen in the pump's progress shows that running rate (`progressMismatch`). A delivered
// volume off the order (`deliveryDivergence`, its `delivery_divergence` alarm) is said under the table, whatever the
// verdict: the rows may all match while the pump delivers more than they say. The rate the pump said it received with
// the order (`receivedFlowRateMlMin`, before anyone accepted it) has a row of its own, never shown as confirmed; a rate
// seen running off the order is followed by "now reports the order's rate" once it does (`progressMismatch.matchedSince`).

import { clock, duration, fixed, mlMinToMlH } from "./format.js";
import { ON_PUMP_SESSION_STATUSES } from "./protocol.js";

export const READBACK_LABEL = {
  match: "Pump confirmed the order: parameters match",
  mismatch: "MISMATCH: the pump reports different parameters from the order",
  unverified: "UNVERIFIED: the pump did not report the parameters it runs; check its screen",
};
// Unverified because the parameters this run's confirmation reported could not be read (`parametersUnreadable`)
export const UNREADABLE_LABEL = "UNVERIFIED: the parameters the pump reported could not be read; check its screen";

const ROWS = [
  ["Rate", (order) => order.flowRateMlMin, (rep) => rep.flowRateMlMin, (v) => fixed(mlMinToMlH(v), 3, "mL/h")],
  ["Volume", (order) => order.plannedVolumeMl, (rep) => rep.plannedVolumeMl, (v) => fixed(v, 2, "mL")],
  ["Time", (order) => order.plannedTimeMin, (rep) => rep.plannedTimeMin, (v) => duration(v)],
  ["Bolus", (order) => (order.bolus?.enabled ? order.bolus.volumeMl : 0), reportedBolus, (v) => fixed(v, 2, "mL")],
];
const SHOW_RATE = ROWS[0][3];

function reportedBolus(rep) {
  if (rep.bolusEnabled === false) return 0;
  return rep.bolusEnabled === true ? rep.bolusVolumeMl : undefined;
}

/** The session's read-back verdict: `readBack`, or unverified for a running session that has none. */
export function readBackOf(session) {
  if (!session) return null;
  if (session.readBack) return session.readBack;
  return ON_PUMP_SESSION_STATUSES.has(session.status) ? "unverified" : null;
}

/** The parameters the pump reported for the run under way: none while it runs unconfirmed (first on evidence, or
 * again after a restart, when `reportedParameters` is what it confirmed before the restart). */
export function reportedThisRun(session) {
  return session?.unconfirmedSince ? {} : (session?.reportedParameters ?? {});
}

/** Whether the pump confirmed parameters before a restart and has run the order again since, unconfirmed. */
export function confirmedBeforeARestart(session) {
  return Boolean(session?.unconfirmedSince && session.reportedParameters);
}

/** The running rate (mL/min) that made the read-back a mismatch, from the pump's progress; null if none did. */
export function mismatchSeenRunning(session) {
  return session?.readBack === "mismatch" ? (session.progressMismatch ?? null) : null;
}

/** Fill `root` with the verdict and a table of ordered and reported values side by side. */
export function renderReadBack(root, session) {
  const verdict = readBackOf(session);
  root.hidden = !verdict;
  root.dataset.readback = verdict ?? "";
  if (!verdict) return root.replaceChildren();
  const unreadable = verdict === "unverified" && session.parametersUnreadable === true;
  const title = paragraph("readback-verdict", unreadable ? UNREADABLE_LABEL : READBACK_LABEL[verdict]);
  const table = document.createElement("table");
  table.className = "readback-table";
  const head = table.createTHead().insertRow();
  for (const text of ["", "Ordered", "Pump reports"]) head.append(Object.assign(document.createElement("th"), { textContent: text }));
  const reported = reportedThisRun(session);
  const unreported = confirmedBeforeARestart(session) ? "not reported since the restart"
    : (session.parametersUnreadable === true ? "reported, could not be read" : "not reported");
  const seen = mismatchSeenRunning(session);
  for (const [label, ordered, fromPump, show] of ROWS) {
    const row = table.insertRow();
    const value = fromPump(reported);
    const said = value === undefined || value === null ? null : show(value);
    row.insertCell().textContent = label;
    row.insertCell().textContent = show(ordered(session.order ?? {}));
    row.insertCell().textContent = label === "Rate" && seen ? seenRunningText(seen, said) : (said ?? unreported);
  }
  const received = receivedRateText(session);
  if (received) {
    const row = table.insertRow();
    row.className = "readback-received";
    for (const text of ["Received", SHOW_RATE(session.order?.flowRateMlMin), received]) row.insertCell().textContent = text;
  }
  const notes = confirmedBeforeARestart(session) ? [paragraph("readback-note", restartNote(session))] : [];
  const delivered = deliveryDivergenceText(session);
  if (delivered) notes.push(paragraph("readback-note readback-divergence", delivered));
  root.replaceChildren(title, table, ...notes);
}

/** "1,200.000 mL/h (seen in its progress at 10:04:05)", and what this run's confirmation said, if it said a rate. */
function seenRunningText(seen, confirmed) {
  const text = `${SHOW_RATE(seen.flowRateMlMin)} (seen in its progress at ${clock(seen.receivedAt)})`;
  const now = seen.matchedSince ? `${text}; now reports the order's rate (since ${clock(seen.matchedSince)})` : text;
  return confirmed ? `${now}; confirmed ${confirmed}` : now;
}

/** "120.000 mL/h (when the order arrived, 10:04:05; before it was accepted: no confirmation)", or null. */
function receivedRateText(session) {
  const value = session?.receivedFlowRateMlMin;
  if (value === null || value === undefined) return null;
  const at = session.deliveredAt ? `, ${clock(session.deliveredAt)}` : "";
  return `${SHOW_RATE(value)} (when the order arrived${at}; before it was accepted: no confirmation)`;
}

/** What the delivered volume said against the order, or null: "DELIVERED VOLUME OFF THE ORDER: 20 mL in 1.0 min, more
 * than 2.6 mL at 120.000 mL/h (seen in its progress at 10:04:05)". */
export function deliveryDivergenceText(session) {
  const seen = session?.deliveryDivergence;
  if (!seen) return null;
  const at = `seen in its progress at ${clock(seen.receivedAt)}`;
  if (seen.kind === "count_went_back") {
    return `DELIVERED COUNT WENT BACK: the pump counts ${fixed(seen.deliveredVolumeMl, 2, "mL")} delivered where ` +
      `${fixed(seen.deliveredBeforeMl, 2, "mL")} had been delivered; it may give the order again ` +
      `(the whole order is ${fixed(seen.limitMl, 2, "mL")}; ${at}).`;
  }
  if (seen.kind === "beyond_planned") {
    const before = seen.deliveredBeforeMl ? ` in all (${fixed(seen.deliveredBeforeMl, 2, "mL")} before its count went back)` : "";
    return `DELIVERED VOLUME OFF THE ORDER: the pump reports ${fixed(seen.deliveredVolumeMl, 2, "mL")} delivered${before}, ` +
      `more than the whole order (${fixed(seen.limitMl, 2, "mL")} with its bolus; ${at}).`;
  }
  return `DELIVERED VOLUME OFF THE ORDER: ${fixed(seen.grewMl, 2, "mL")} delivered in ${fixed(seen.overMin, 1, "min")}, ` +
    `more than ${fixed(seen.limitMl, 2, "mL")} at ${SHOW_RATE(seen.flowRateMlMin)} (${at}).`;
}

function restartNote(session) {
  return `The pump restarted and has run this order again since ${clock(session.unconfirmedSince)} without ` +
    "confirming it: what it confirmed before the restart is not what it runs now.";
}

function paragraph(className, text) {
  return Object.assign(document.createElement("p"), { className, textContent: text });
}
