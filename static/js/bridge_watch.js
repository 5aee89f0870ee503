// The bridge poll of every page: the "monitoring degraded" banner while the bridge's heartbeat is stale or the
// server does not answer the poll, the server's clock, and the end of the page's session (split from live.js; pages
// import it from there).

import { noteServerTime, pageClockMs, setMonitoringHealthy } from "./format.js";

// A poll not answered within this is given up (a black-holed network would hold its fetch for minutes), so the
// next poll asks afresh; this many failures in a row (about 10 s) mean the server cannot be reached.
const POLL_TIMEOUT_MS = 4000;
const UNREACHABLE_AFTER_FAILURES = 2;
// The banner while the polls fail (an error status, no answer, no answer in time): the server cannot vouch for what
// the page shows. The last good answer ("healthy") stood for the whole of a database outage, every poll answering
// 500, and the monitor read "Online … No active alarms" with an occlusion waiting at the broker (review 34, finding 1).
const UNREACHABLE_TEXT = "Monitoring degraded: the server does not answer. Pump data may be out of date and alarms " +
  "may not reach this screen: check the pumps at the bedside.";

/** Whether a poll's answer says monitoring is alive: the bridge reports and holds the broker. */
function bridgeHealthyIn(bridge) {
  return Boolean(bridge?.alive && bridge?.brokerConnected);
}

/** Shows the "monitoring degraded" banner, and greys every pump (`setMonitoringHealthy`), while the bridge's heartbeat
 * is stale, or while the polls fail (`UNREACHABLE_AFTER_FAILURES` in a row: an error status, unanswered within 4 s),
 * the banner then saying the server does not answer; a poll answered again ends it. One road for every page.
 * `onHealth(healthy, reachable)` is told at each poll: `healthy` whether this page can vouch that monitoring is alive,
 * `reachable` whether the server answers its polls.
 * `onSignedOut(signedOut)` is told each poll whether the session has ended; without it, a page whose session ended
 * (401) reloads, and the server asks to sign in: it must not go on showing what it no longer receives. */
export function watchBridge(
  initial,
  { banner = document.getElementById("degraded-banner"), url, everyMs = 5000, onHealth, onSignedOut } = {},
) {
  const bridgeText = banner?.textContent.trim() ?? "";
  let bridgeHealthy = bridgeHealthyIn(initial);
  let failures = 0;
  const show = () => {
    const reachable = failures < UNREACHABLE_AFTER_FAILURES;
    const healthy = bridgeHealthy && reachable;
    setMonitoringHealthy(healthy);
    if (banner) {
      banner.hidden = healthy;
      banner.dataset.cause = healthy ? "" : reachable ? "bridge" : "unreachable";
      const text = reachable ? bridgeText : UNREACHABLE_TEXT;
      if (banner.textContent.trim() !== text) banner.textContent = text;
    }
    onHealth?.(healthy, reachable);
  };
  show();
  if (!url) return;
  const answered = (bridge) => {
    failures = 0;
    if (bridge) bridgeHealthy = bridgeHealthyIn(bridge);
    show();
  };
  const failed = () => {
    failures += 1;
    show();
  };
  const poll = async () => {
    try {
      const sentAt = pageClockMs();
      const signal = AbortSignal.timeout(POLL_TIMEOUT_MS);
      const response = await fetch(url, { credentials: "same-origin", signal });
      const signedOut = response.status === 401 || response.status === 403;
      if (onSignedOut) onSignedOut(signedOut);
      else if (response.status === 401) window.location.reload(); // the sign-in page, with `next` back here
      if (signedOut) return answered(null); // the server answers; the page says it is signed out
      if (!response.ok) return failed(); // 500, or 503 when the server cannot read its database
      const bridge = await response.json();
      noteServerTime(bridge.serverNow, sentAt); // keeps the page's estimate of the server's clock honest
      answered(bridge);
    } catch {
      failed(); // unreachable, no answer within POLL_TIMEOUT_MS, or no JSON
    }
  };
  poll(); // at once: a page delivered late (or from a cache) must not keep its render-time clock
  setInterval(poll, everyMs);
}
