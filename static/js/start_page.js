// The start page: the wizard, then the waiting modal, then the monitor on the same page (no reload).

import { readPageData, setServerNow, setTimeZone } from "./format.js";
import { LiveConnection, watchBridge } from "./live.js";
import { Monitor } from "./monitor.js";
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

function showMonitor() {
  wizardRoot.hidden = true;
  monitorRoot.hidden = false;
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
  });
  wizard = new Wizard(wizardRoot, { onStarted: (session) => waiting.open(session), limits: page.monitor.orderLimits });
}
// the bridge's health to the waiting window too: while the server cannot hear the pumps, it says so
watchBridge(page.bridge, { url: "/api/bridge/", onHealth: (healthy) => waiting?.onBridgeHealth(healthy) });
