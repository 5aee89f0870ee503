// Operations page: polls /ops/status.json every 2 s and renders it. The message totals are the bridge process's own
// counters, carried by its heartbeat: rates come from two heartbeats of one process, and a restart (another process,
// or a total that went down) is a new start, never a negative rate.
(function () {
  "use strict";
  const POLL_MS = 2000;
  let counting = null; // {process, at, received, rates, restarted}: the counters at the heartbeat last used

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
  function row(values) { const tr = document.createElement("tr"); values.forEach(v => tr.appendChild(cell(v))); return tr; }
  function fillTable(id, rows) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...(rows.length ? rows.map(row) : [row(["none"])]));
  }
  function fillList(id, entries) {
    const list = document.getElementById(id);
    list.replaceChildren();
    entries.forEach(([key, value]) => {
      const dt = document.createElement("dt"); dt.textContent = key;
      const dd = document.createElement("dd"); dd.textContent = value;
      list.append(dt, dd);
    });
  }
  function clock(iso) { return new Date(iso).toLocaleTimeString(); }

  // Messages per second by kind over two heartbeats of one bridge process; none ("—") at a process's first
  // heartbeat seen (after a restart, until its next one: the counters started again from 0) and while the bridge
  // is not reporting. `counting.restarted`: this page saw the restart (another process, or a total went down).
  function ratesPerSecond(data, reporting) {
    const bridge = data.bridge, stats = bridge.stats || {};
    const process = `${bridge.name} ${stats.countersSince || ""}`, at = Date.parse(bridge.heartbeatAt);
    const restarted = counting !== null && (counting.process !== process
      || Object.entries(counting.received).some(([kind, total]) => (data.received[kind] || 0) < total));
    if (!reporting || counting === null || restarted) {
      counting = reporting ? { process, at, received: data.received, rates: {}, restarted } : null;
    } else if (at > counting.at) { // a newer heartbeat; the same one polled again keeps the rates it gave
      const seconds = (at - counting.at) / 1000;
      const rates = Object.fromEntries(Object.entries(data.received).map(
        ([kind, total]) => [kind, ((total - (counting.received[kind] || 0)) / seconds).toFixed(1)]));
      counting = { process, at, received: data.received, rates, restarted: false };
    }
    return counting || { rates: {}, restarted: false };
  }

  function countedSince(bridge, restarted) {
    const since = bridge.stats && bridge.stats.countersSince;
    const start = since ? `Totals since the bridge started at ${clock(since)}` : "Totals since the bridge started";
    const text = restarted ? `${start}: it restarted, its totals began again` : start;
    document.querySelectorAll(".ops-counted").forEach(p => { p.textContent = text; });
  }
  function render(data) {
    const bridge = data.bridge, stats = bridge.stats || {};
    const banner = document.getElementById("ops-banner");
    banner.className = "banner " + (bridge.alive ? (bridge.brokerConnected ? "ok" : "degraded") : "degraded");
    banner.textContent = !bridge.alive ? "Monitoring degraded: the bridge is not reporting"
      : bridge.brokerConnected ? "Bridge alive and connected to the broker" : "Bridge alive, but the broker is unreachable";
    fillList("ops-bridge", [
      ["Heartbeat", bridge.heartbeatAt || "never"], ["Broker", bridge.brokerConnected ? "connected" : "not connected"],
      ["Waiting in the bridge", stats.inbox ?? "—"], ["Daphne woken", stats.publisherWakes ?? "—"],
      ["Internal road", stats.internalConnected === undefined ? "—" : stats.internalConnected ? "connected" : "not connected"], ["Batches", stats.batches ?? "—"],
      ["Largest batch", stats.largest_batch ?? "—"], ["MQTT", stats.protocol ?? "—"],
    ]);
    const { rates, restarted } = ratesPerSecond(data, bridge.alive);
    countedSince(bridge, restarted);
    fillTable("ops-received", Object.entries(data.received).map(([k, v]) => [k, v, rates[k] ?? "—"]));
    fillTable("ops-rejected", Object.entries(data.rejected).map(([k, v]) => [k, v]));
    fillList("ops-clients", [["Connected", data.clients.connected], ["Pump subscriptions", data.clients.deviceSubscriptions],
      ["Ward feeds", data.clients.wardSubscriptions]]);
    fillList("ops-pumps", ["online", "stale", "offline", "unknown"].map(k => [k, data.pumps[k] || 0]));
    fillList("ops-alarms", ["high", "medium", "low"].map(k => [k, data.alarms[k] || 0]));
    const escalations = data.escalations || {};
    fillList("ops-escalations", ["pending", "delivered", "dead", "withdrawn"].map(k => [k, escalations[k] || 0]));
    fillTable("ops-dead-letters", data.deadLetters.map(d => [clock(d.at), d.source, d.topic, d.reason, d.detail]));
    document.getElementById("ops-at").textContent = clock(data.at);
  }
  async function poll() {
    try {
      const response = await fetch("/ops/status.json", { credentials: "same-origin" });
      if (response.redirected) {
        window.location.reload(); // the session ended (sent to sign in): the server asks to sign in again
        return;
      }
      if (response.ok) render(await response.json());
      else document.getElementById("ops-banner").textContent = `Operations data unavailable (HTTP ${response.status})`;
    } catch (error) {
      document.getElementById("ops-banner").textContent = "Operations data unavailable: the server is unreachable";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();
