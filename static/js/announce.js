// The page's alarm live region: each alert of an alarm (a new alarm, a reminder making an acknowledged one alert
// again, a raise at a higher priority) is spoken once by screen readers; a repeat of a sounding alarm is not. The region is filled and then cleared, so the same words can be announced again later.

const CLEAR_AFTER_MS = 10_000;
const announced = new Map(); // alarm id → the alert announced (`alertOf`)

/** Which alert of an alarm this is: a reminder or a raise at a higher priority adds one; a repeat (the pump sending
 * it again, `lastRaisedAt` moving) does not, and is not spoken again. */
export const alertOf = (alarm) => String(alarm.alerts ?? alarm.lastRaisedAt ?? alarm.raisedAt ?? "");

/** Announce `alarm` ("High alarm, Bed 3: Downstream occlusion") unless this alert was already announced. */
export function announceAlarm(alarm, where = "") {
  if (!alarm || alarm.acknowledged || alarm.state === "cleared") return;
  const alert = alertOf(alarm);
  if (announced.get(alarm.id) === alert) return;
  announced.set(alarm.id, alert);
  const priority = String(alarm.priority ?? "").replace(/^./, (c) => c.toUpperCase());
  const what = alarm.message || String(alarm.type ?? "alarm").replaceAll("_", " ");
  announce(`${priority} alarm${where ? `, ${where}` : ""}: ${what}`);
}

/** Remember the alarms already on the page when it opens: they are not news. */
export function alreadyShown(alarms) {
  for (const alarm of alarms) if (alarm) announced.set(alarm.id, alertOf(alarm));
}

function announce(text) {
  const region = document.getElementById("alarm-announcer");
  if (!region) return;
  region.textContent = text;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => {
    region.textContent = "";
  }, CLEAR_AFTER_MS);
}
