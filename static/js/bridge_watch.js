// The bridge poll of every page: the "monitoring degraded" banner while the bridge's heartbeat is stale, the server's
// clock, and the end of the page's session (split from live.js; pages import it from there).

import { noteServerTime, setMonitoringHealthy } from "./format.js";

// A poll not answered within this is given up (a black-holed network would hold its fetch for minutes), so the
// next poll asks afresh; this many failures in a row (about 10 s) mean the server cannot be reached.
const POLL_TIMEOUT_MS = 4000;
const UNREACHABLE_AFTER_FAILURES = 2;

/** Shows the "monitoring degraded" banner while the bridge's heartbeat is stale (polled from /readyz-like data).
 * `onReachable(reachable)` is told when polls start or stop failing (unanswered within 4 s, twice in a row).
 * `onSignedOut(signedOut)` is told each poll whether the session has ended; without it, a page whose session ended
 * (401) reloads, and the server asks to sign in: it must not go on showing what it no longer receives. */
export function watchBridge(
  initial,
  { banner = document.getElementById("degraded-banner"), url, everyMs = 5000, onHealth, onReachable, onSignedOut } = {},
) {
  const show = (bridge) => {
    const healthy = Boolean(bridge?.alive && bridge?.brokerConnected);
    setMonitoringHealthy(healthy);
    if (banner) banner.hidden = healthy;
    onHealth?.(healthy);
  };
  show(initial);
  if (!url) return;
  let failures = 0;
  const failed = (failing) => {
    const before = failures;
    failures = failing ? failures + 1 : 0;
    if (failures === UNREACHABLE_AFTER_FAILURES || (!failing && before >= UNREACHABLE_AFTER_FAILURES)) {
      onReachable?.(!failing);
    }
  };
  const poll = async () => {
    try {
      const sentAt = Date.now();
      const signal = AbortSignal.timeout(POLL_TIMEOUT_MS);
      const response = await fetch(url, { credentials: "same-origin", signal });
      failed(response.status >= 500);
      if (onSignedOut) onSignedOut(response.status === 401 || response.status === 403);
      else if (response.status === 401) window.location.reload(); // the sign-in page, with `next` back here
      if (!response.ok) return;
      const bridge = await response.json();
      noteServerTime(bridge.serverNow, sentAt); // keeps the page's estimate of the server's clock honest
      show(bridge);
    } catch {
      failed(true); // unreachable, or no answer within POLL_TIMEOUT_MS
    }
  };
  poll(); // at once: a page delivered late (or from a cache) must not keep its render-time clock
  setInterval(poll, everyMs);
}
