// The start page: the pump's status line and alarms, the wizard, then the waiting window, then the monitor on the
// same page (no reload). Opened (or reloaded) while the pump's order waits, it shows that order's waiting window; on
// a pump already infusing, its monitor.

import { readPageData, setServerNow, setTimeZone } from "./format.js";
import { LiveConnection, watchBridge } from "./live.js";
import { Monitor } from "./monitor.js";
import { EVENTS, ON_PUMP_SESSION_STATUSES } from "./protocol.js";
import { showWhenRemoved } from "./pump_removed.js";
import { WaitingModal } from "./waiting.js";
import { Wizard } from "./wizard.js";

const page = readPageData();
setServerNow(page.serverNow);
setTimeZone(page.timeZone);
const live = new LiveConnection();
const monitorRoot = document.getElementById("monitor");
const monitor = new Monitor({ root: monitorRoot, page, live });
window.pumpstreamMonitor = monitor;
showWhenRemoved(live, monitorRoot);

const wizardRoot = document.getElementById("wizard");

/** The whole monitor (until now only the pump's status line and alarms), in place of the wizard. */
function showMonitor() {
  if (wizardRoot) wizardRoot.hidden = true;
  for (const part of monitorRoot.querySelectorAll("[data-after-start]")) part.hidden = false;
  history.replaceState(null, "", `/devices/${encodeURIComponent(monitor.deviceId)}/`);
  document.title = `${monitor.deviceId} · PumpStream`;
  monitorRoot.querySelector("h1")?.setAttribute("tabindex", "-1");
  monitorRoot.querySelector("h1")?.focus();
}

let waiting = null;
if (wizardRoot) {
  let wizard = null;
  waiting = new WaitingModal(document.getElementById("waiting-modal"), {
    monitor,
    live,
    confirmationTimeoutS: page.confirmationTimeoutS,
    toldToClear: page.toldToClear,
    onConfirmed: showMonitor,
    onRetry: () => wizard.retry(),
    onGone: () => location.assign("/"), // the pump left her wards: its pages are no longer hers
    onClose: () => {
      wizardRoot.hidden = false;
      wizard.confirmAgain(); // that order is over: another is confirmed anew
    },
  });
  const openWaiting = (session, earlier) => {
    wizardRoot.hidden = true; // the window takes its place: the order is sent, nothing in the form counts now
    waiting.open(session, earlier);
  };
  wizard = new Wizard(wizardRoot, { onStarted: openWaiting, limits: page.monitor.orderLimits });
  // An order appears on the pump while a request of the wizard's went unanswered (its reply lost, the form maybe
  // edited since): it may be that request's order
  monitor.onEvent((name, payload) => {
    if (name === EVENTS.deviceSession && payload.session?.status === "pending" && wizard.unsure) wizard.checkPlaced();
  });
  const session = monitor.session;
  if (session?.status === "pending") openWaiting(session); // reloaded while its order waits
  else if (ON_PUMP_SESSION_STATUSES.has(session?.status)) showMonitor(); // infusing: stop it first, on the monitor
}
// Kept in the back/forward cache and shown again by Back, the page would show the pump, its order and the wizard as
// they were when it was left: it is served anew instead, as the server knows them now (review 33, finding 4).
window.addEventListener("pageshow", (event) => event.persisted && location.reload());
watchBridge(page.bridge, { url: "/api/bridge/", onHealth: (healthy) => waiting?.onBridgeHealth(healthy) });
