// Read-back (contract v1.1): the order beside what the pump confirmed, field by field, and one plain verdict:
// match, mismatch or unverified. The waiting window and the monitor both show it.

import { duration, fixed, mlMinToMlH } from "./format.js";
import { ON_PUMP_SESSION_STATUSES } from "./protocol.js";

export const READBACK_LABEL = {
  match: "Pump confirmed the order: parameters match",
  mismatch: "MISMATCH: the pump runs different parameters from the order",
  unverified: "UNVERIFIED: the pump did not report the parameters it runs; check its screen",
};

const ROWS = [
  ["Rate", (order) => order.flowRateMlMin, (rep) => rep.flowRateMlMin, (v) => fixed(mlMinToMlH(v), 3, "mL/h")],
  ["Volume", (order) => order.plannedVolumeMl, (rep) => rep.plannedVolumeMl, (v) => fixed(v, 2, "mL")],
  ["Time", (order) => order.plannedTimeMin, (rep) => rep.plannedTimeMin, (v) => duration(v)],
  ["Bolus", (order) => (order.bolus?.enabled ? order.bolus.volumeMl : 0), reportedBolus, (v) => fixed(v, 2, "mL")],
];

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

/** Fill `root` with the verdict and a table of ordered and reported values side by side. */
export function renderReadBack(root, session) {
  const verdict = readBackOf(session);
  root.hidden = !verdict;
  root.dataset.readback = verdict ?? "";
  if (!verdict) return root.replaceChildren();
  const title = document.createElement("p");
  title.className = "readback-verdict";
  title.textContent = READBACK_LABEL[verdict];
  const table = document.createElement("table");
  table.className = "readback-table";
  const head = table.createTHead().insertRow();
  for (const text of ["", "Ordered", "Pump reports"]) head.append(Object.assign(document.createElement("th"), { textContent: text }));
  const reported = session.reportedParameters ?? {};
  for (const [label, ordered, fromPump, show] of ROWS) {
    const row = table.insertRow();
    const value = fromPump(reported);
    row.insertCell().textContent = label;
    row.insertCell().textContent = show(ordered(session.order ?? {}));
    row.insertCell().textContent = value === undefined || value === null ? "not reported" : show(value);
  }
  root.replaceChildren(title, table);
}
