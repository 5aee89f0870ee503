// The bridge poll of every page: the "monitoring degraded" banner while the bridge's heartbeat is stale, the server's
// clock, and the end of the page's session (split from live.js; pages import it from there).

import { noteServerTime, setMonitoringHealthy } from "./format.js";

/** Shows the "monitoring degraded" banner while the bridge's heartbeat is stale (polled from /readyz-like data).
 * `onSignedOut(signedOut)` is told each poll whether the session has ended; without it, a page whose session ended
 * (401) reloads, and the server asks to sign in: it must not go on showing what it no longer receives. */
export function watchBridge(
  initial,
  { banner = document.getElementById("degraded-banner"), url, everyMs = 5000, onHealth, onSignedOut } = {},
) {
  const show = (bridge) => {
    const healthy = Boolean(bridge?.alive && bridge?.brokerConnected);
    setMonitoringHealthy(healthy);
    if (banner) banner.hidden = healthy;
    onHealth?.(healthy);
  };
  show(initial);
  if (!url) return;
  const poll = async () => {
    try {
      const sentAt = Date.now();
      const response = await fetch(url, { credentials: "same-origin" });
      if (onSignedOut) onSignedOut(response.status === 401 || response.status === 403);
      else if (response.status === 401) window.location.reload(); // the sign-in page, with `next` back here
      if (!response.ok) return;
      const bridge = await response.json();
      noteServerTime(bridge.serverNow, sentAt); // keeps the page's estimate of the server's clock honest
      show(bridge);
    } catch {
      // unreachable server: the connection banner already says so
    }
  };
  poll(); // at once: a page delivered late (or from a cache) must not keep its render-time clock
  setInterval(poll, everyMs);
}
