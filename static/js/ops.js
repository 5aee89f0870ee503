// Operations page: polls /ops/status.json every 2 s and renders it; rates come from successive polls.
(function () {
  "use strict";
  const POLL_MS = 2000;
  let previous = null;

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
  function perSecond(kind, total, data) {
    if (!previous) return "—";
    const seconds = (Date.parse(data.at) - Date.parse(previous.at)) / 1000;
    const before = previous.received[kind] || 0;
    return seconds > 0 ? ((total - before) / seconds).toFixed(1) : "—";
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
    fillTable("ops-received", Object.entries(data.received).map(([k, v]) => [k, v, perSecond(k, v, data)]));
    fillTable("ops-rejected", Object.entries(data.rejected).map(([k, v]) => [k, v]));
    fillList("ops-clients", [["Connected", data.clients.connected], ["Pump subscriptions", data.clients.deviceSubscriptions],
      ["Ward feeds", data.clients.wardSubscriptions]]);
    fillList("ops-pumps", ["online", "stale", "offline", "unknown"].map(k => [k, data.pumps[k] || 0]));
    fillList("ops-alarms", ["high", "medium", "low"].map(k => [k, data.alarms[k] || 0]));
    const escalations = data.escalations || {};
    fillList("ops-escalations", ["pending", "delivered", "dead", "withdrawn"].map(k => [k, escalations[k] || 0]));
    fillTable("ops-dead-letters", data.deadLetters.map(d => [new Date(d.at).toLocaleTimeString(), d.source, d.topic, d.reason, d.detail]));
    document.getElementById("ops-at").textContent = new Date(data.at).toLocaleTimeString();
    previous = data;
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
