// Which alarm comes first, on every page: the one a pump's card shows, the one the station's banner and tab title
// name, the top of every alarm list. The server's rule (devices/alarm_order.py, docs/clinical-rules.md "Which alarm
// comes first"), here because the pages re-sort on every live alarm change: the highest priority; within it the
// unanswered before the acknowledged (a card read "(acknowledged)" while an older alarm of its priority sounded
// unanswered: review 32, finding 3); among the unanswered the higher escalation tier (a new alarm took the banner
// from one escalated to the ward manager: finding 5); then the newest, the id settling a tie.

const RANK = { high: 3, medium: 2, low: 1 };

/** The tier an unanswered alarm reached; an acknowledged alarm's counts for nothing (acknowledging stops it). */
function tier(alarm) {
  return alarm.acknowledged ? 0 : (alarm.escalation?.level ?? 0);
}

function raisedMs(alarm) {
  const ms = Date.parse(alarm.raisedAt ?? "");
  return Number.isNaN(ms) ? -Infinity : ms;
}

function descending(a, b) {
  return a > b ? -1 : a < b ? 1 : 0;
}

/** `Array.prototype.sort`'s comparator for alarms (a pump's, or a ward's): the most urgent first. */
export function byUrgency(a, b) {
  return descending(RANK[a.priority] ?? 0, RANK[b.priority] ?? 0) ||
    Number(Boolean(a.acknowledged)) - Number(Boolean(b.acknowledged)) ||
    descending(tier(a), tier(b)) ||
    descending(raisedMs(a), raisedMs(b)) ||
    descending(Number(a.id) || 0, Number(b.id) || 0);
}
