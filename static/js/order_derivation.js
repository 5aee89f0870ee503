// The order the server places from the figures the wizard sends, derived by the server's own rule (devices/forms.py
// `_complete_rate_volume_time`): any two of rate, volume and time; the rate in mL/min rounded to the wire's decimals
// first, then the volume or time left out derived from that rate and rounded as Python's `round` rounds. The review
// shows this order, so the figures the nurse confirms are the figures the pump is sent (review 28, finding 1: 1 mL over
// 580 min reviewed as 0.1 mL/h while 0.103 mL/h was ordered; 7.5 mL/h for 45 min as 5.63 mL while 5.62 mL was).

const MINUTES_PER_HOUR = 60;

/** Python's `round(value, places)`: the nearest number of `places` decimals to the double's exact value, a tie going
 * to the even digit (5.625 -> 5.62, 0.375 -> 0.38, 0.0078125 -> 0.007812), where `toFixed` rounds a tie up. */
export function roundAsServer(value, places) {
  const exactDigits = Math.abs(value).toFixed(100); // every double of an order has fewer decimals than 100
  const cut = exactDigits.indexOf(".") + 1 + places;
  const kept = exactDigits.slice(0, cut);
  const tie = /^50*$/.test(exactDigits.slice(cut));
  if (tie && Number(kept.replace(".", "").at(-1)) % 2 === 0) return Math.sign(value) * Number(kept);
  return Number(value.toFixed(places)); // the nearest (toFixed rounds the exact value too), or a tie to the even above
}

/** The order placed from `typed` ({rateMlH, volumeMl, timeMin}, null for a figure left out, as the wizard sends a
 * computed one): {flowRateMlMin, plannedVolumeMl, plannedTimeMin} in the wire's names, or null when fewer than two
 * figures are given or the rate rounds to nothing. `decimals`: the server's ({rateMlMin, volumeMl, timeMin}). */
export function derivedOrder({ rateMlH, volumeMl, timeMin }, decimals) {
  if ([rateMlH, volumeMl, timeMin].filter((figure) => figure !== null).length < 2) return null;
  const rate = rateMlH ?? (volumeMl / timeMin) * MINUTES_PER_HOUR;
  const flowRateMlMin = roundAsServer(rate / MINUTES_PER_HOUR, decimals.rateMlMin);
  if (!(flowRateMlMin > 0)) return null;
  const plannedTimeMin = timeMin ?? roundAsServer(volumeMl / flowRateMlMin, decimals.timeMin);
  const plannedVolumeMl = volumeMl ?? roundAsServer(flowRateMlMin * plannedTimeMin, decimals.volumeMl);
  return { flowRateMlMin, plannedVolumeMl, plannedTimeMin };
}

/** Whether an order's rate x time is its volume to within the rounding of the figure it would derive from the other
 * two (`protocol/limits.py::order_figures_agree`, the server's rule): every order `derivedOrder` gives agrees; three
 * figures typed that do not are refused (review 33, finding 4: 121 mL/h for 15 min with 30 mL, 30.25 mL). `limits`:
 * the server's `decimals` and `tolerance` (`orderLimits`). */
export function figuresAgree({ flowRateMlMin, plannedVolumeMl, plannedTimeMin }, { decimals, tolerance }) {
  const half = (places) => 0.5 * 10 ** -places;
  const allowed = Math.max(
    half(decimals.volumeMl), half(decimals.timeMin) * flowRateMlMin, half(decimals.rateMlMin) * plannedTimeMin,
  );
  return Math.abs(flowRateMlMin * plannedTimeMin - plannedVolumeMl) <= allowed + tolerance;
}
