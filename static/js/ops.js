// Operations page: polls /ops/status.json every 2 s and renders it. The message totals are the bridge process's own
// counters, carried by its heartbeat: rates come from two heartbeats of one process, and a restart (another process,
// or a total that went down) is a new start, never a negative rate. Figures of a heartbeat that is no longer fresh,
// and every figure once a poll fails, are marked stale with their age: the page never shows old figures as current.
(function () {
  "use strict";
  const POLL_MS = 2000;
  let counting = null; // {process, at, received, rates, restarted}: the counters at the heartbeat last used
  let rendered = null; // {at, clock}: the server's time of the figures shown, and this browser's clock then

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
  function row(values) { const tr = document.createElement("tr"); values.forEach(v => tr.appendChild(cell(v))); return tr; }
  function fillTable(id, rows, stale = false) {
    const table = document.getElementById(id);
    table.classList.toggle("stale", stale);
    table.querySelector("tbody").replaceChildren(...(rows.length ? rows.map(row) : [row(["none"])]));
  }
  // entries: [term, value] or [term, value, stale]
  function fillList(id, entries) {
    const list = document.getElementById(id);
    list.replaceChildren();
    entries.forEach(([key, value, stale]) => {
      const dt = document.createElement("dt"); dt.textContent = key;
      const dd = document.createElement("dd"); dd.textContent = value;
      if (stale) dd.className = "stale";
      list.append(dt, dd);
    });
  }
  function clock(iso) { return new Date(iso).toLocaleTimeString(); }
  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
  }
  // The banner is a live region: its text is set only when it changes, so it is not announced again at every poll.
  function say(className, text) {
    const banner = document.getElementById("ops-banner");
    banner.className = "banner " + className;
    if (banner.textContent !== text) banner.textContent = text;
  }

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

  function countedSince(bridge, reporting, age, restarted) {
    const since = bridge.stats && bridge.stats.countersSince;
    const start = since ? `Totals since the bridge started at ${clock(since)}` : "Totals since the bridge started";
    const text = !reporting && bridge.heartbeatAt ? `${start}, from its last heartbeat, ${ago(age)}: not current`
      : restarted ? `${start}: it restarted, its totals began again` : start;
    document.querySelectorAll(".ops-counted").forEach(p => {
      p.textContent = text;
      p.classList.toggle("stale", !reporting);
    });
  }

  function renderBridge(bridge, reporting, age) {
    const stats = bridge.stats || {};
    // a heartbeat's figure: as it is while the bridge reports, else what it was and how long ago
    const heard = value => (value === "—" || reporting ? [value] : [`was ${value}, ${ago(age)}`, true]);
    const road = stats.internalConnected === undefined ? "—" : stats.internalConnected ? "connected" : "not connected";
    fillList("ops-bridge", [
      ["Heartbeat", bridge.heartbeatAt ? `${clock(bridge.heartbeatAt)} (${ago(age)})` : "never", !reporting],
      ["Broker", ...(reporting ? [bridge.brokerConnected ? "connected" : "not connected"]
        : ["unknown: the bridge is not reporting", true])],
      ["Waiting in the bridge", ...heard(stats.inbox ?? "—")], ["Daphne woken", ...heard(stats.publisherWakes ?? "—")],
      ["Internal road", ...heard(road)], ["Batches", ...heard(stats.batches ?? "—")],
      ["Largest batch", ...heard(stats.largest_batch ?? "—")], ["MQTT", ...heard(stats.protocol ?? "—")],
    ]);
  }

  function render(data) {
    const bridge = data.bridge, reporting = bridge.alive;
    const age = bridge.heartbeatAt ? (Date.parse(data.at) - Date.parse(bridge.heartbeatAt)) / 1000 : null;
    say(reporting && bridge.brokerConnected ? "ok" : "degraded",
      !reporting ? "Monitoring degraded: the bridge is not reporting"
        : bridge.brokerConnected ? "Bridge alive and connected to the broker" : "Bridge alive, but the broker is unreachable");
    document.getElementById("ops-figures").classList.remove("stale");
    renderBridge(bridge, reporting, age);
    const { rates, restarted } = ratesPerSecond(data, reporting);
    countedSince(bridge, reporting, age, restarted);
    fillTable("ops-received", Object.entries(data.received).map(([k, v]) => [k, v, rates[k] ?? "—"]), !reporting);
    fillTable("ops-rejected", Object.entries(data.rejected).map(([k, v]) => [k, v]), !reporting);
    fillList("ops-clients", [["Connected", data.clients.connected], ["Pump subscriptions", data.clients.deviceSubscriptions],
      ["Ward feeds", data.clients.wardSubscriptions]]);
    fillList("ops-pumps", ["online", "stale", "offline", "unknown"].map(k => [k, data.pumps[k] || 0]));
    fillList("ops-alarms", ["high", "medium", "low"].map(k => [k, data.alarms[k] || 0]));
    const escalations = data.escalations || {};
    fillList("ops-escalations", ["pending", "delivered", "dead", "withdrawn"].map(k => [k, escalations[k] || 0]));
    fillTable("ops-dead-letters", data.deadLetters.map(d => [clock(d.at), d.source, d.topic, d.reason, d.detail]));
    document.getElementById("ops-at").textContent = clock(data.at);
    rendered = { at: data.at, clock: Date.now() };
  }

  // The poll failed: nothing below is current any more. The banner turns degraded and says from when the figures
  // are; the figures are greyed and the last update's line gives their age.
  function unavailable(reason) {
    const figures = rendered ? ` The figures below are from ${clock(rendered.at)}: not current.` : "";
    say("degraded", `Operations data unavailable: ${reason}.${figures}`);
    document.getElementById("ops-figures").classList.add("stale");
    if (rendered) {
      document.getElementById("ops-at").textContent =
        `${clock(rendered.at)} (${ago((Date.now() - rendered.clock) / 1000)}; not refreshed since)`;
    }
  }

  async function poll() {
    try {
      const response = await fetch("/ops/status.json", { credentials: "same-origin" });
      if (response.redirected) {
        window.location.reload(); // the session ended (sent to sign in): the server asks to sign in again
        return;
      }
      if (response.ok) render(await response.json());
      else unavailable(`HTTP ${response.status}`);
    } catch (error) {
      unavailable("the server is unreachable");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();
