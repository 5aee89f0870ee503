// The page's clocks: how long has passed (ages, silences, countdowns, the connection's watchdog) and what time it is on
// the server's clock. Neither is read straight from the browser's wall clock (`Date.now()`): the PC's clock can be
// stepped back (an NTP correction of a PC that ran fast, someone setting the time), and every age measured on it would
// then read the step younger: a pump silent for minutes "Live", a silent network unnoticed (review 35).

// ---- The page clock ----------------------------------------------------------------------------
// Milliseconds since the page's navigation began: since its last anchoring, the larger of what the monotonic clock
// (`performance.now()`, which a step of the wall clock leaves alone) and the wall clock advanced. A step back changes
// nothing, and a sleep of the machine, which some systems leave out of `performance.now()` while the wall clock goes on,
// still counts: the page clock never runs slow while either clock is right, and an elapsed time measured on it is never
// short. A step forward cannot be told from such a sleep: it is counted (an age too old, the safe side) until the next
// server time corrects the estimate below. When the two clocks part (a step, a sleep) the page clock is anchored anew
// at its reading; between anchorings it is never a sum of small steps (the wall clock's whole milliseconds, read often,
// would add up ahead of the time that passed).
const CLOCKS_PART_MS = 20; // more than the two clocks' readings differ by their resolutions
let anchor = null; // {wall, monotonic, page}: both clocks and the page clock at the last anchoring

export function pageClockMs() {
  const wall = Date.now();
  const monotonic = performance.now();
  if (anchor === null) anchor = { wall, monotonic, page: monotonic };
  const byWall = wall - anchor.wall;
  const byMonotonic = monotonic - anchor.monotonic;
  const page = anchor.page + Math.max(byWall, byMonotonic);
  if (Math.abs(byWall - byMonotonic) > CLOCKS_PART_MS) anchor = { wall, monotonic, page };
  return page;
}

// ---- The server's clock ------------------------------------------------------------------------
// Every page computes ages ("35 s ago") on the server's clock, estimated as the page clock plus an offset (server
// clock minus page clock) that is never guessed low: a server time T read by a request the page sent at A satisfies
// offset <= T - A, so the smallest such bound is kept. The page's own `serverNow` is bounded from the navigation's
// start (page clock 0: it started before the server rendered), so an age shown is never younger than the truth. A
// time the server wrote before the page received it at R gives offset >= T - R: when a bound contradicts the kept one
// (the page clock ran ahead of the server's, after a wall clock stepped forward or a sleep), the kept one is
// replaced. Until the server has said its time, the estimate is the browser's wall clock at the navigation's start.
let clockOffsetMs = null;

/** Learn from a server time `isoString` read by a request sent at `sentAtMs` (page clock, `pageClockMs`). */
export function noteServerTime(isoString, sentAtMs, receivedAtMs = pageClockMs()) {
  const server = Date.parse(isoString ?? "");
  if (Number.isNaN(server) || !Number.isFinite(sentAtMs)) return;
  const upper = server - sentAtMs;
  const lower = server - receivedAtMs;
  if (clockOffsetMs === null || upper < clockOffsetMs || lower > clockOffsetMs) clockOffsetMs = upper;
}

/** The page's render time: the navigation (and so the request) started at page clock 0. */
export function setServerNow(isoString) {
  noteServerTime(isoString, 0);
}

export function serverNowMs() {
  return pageClockMs() + (clockOffsetMs ?? performance.timeOrigin);
}
