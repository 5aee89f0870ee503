// The pump monitor page: one live connection, the monitor, and the bridge's health.

import { readPageData, setServerNow, setTimeZone } from "./format.js";
import { LiveConnection, watchBridge } from "./live.js";
import { Monitor } from "./monitor.js";
import { showWhenRemoved } from "./pump_removed.js";

const page = readPageData();
setServerNow(page.serverNow);
setTimeZone(page.timeZone);
const live = new LiveConnection();
window.pumpstreamMonitor = new Monitor({ root: document.getElementById("monitor"), page, live });
showWhenRemoved(live, document.getElementById("monitor"));
watchBridge(page.bridge, { url: "/api/bridge/" });
