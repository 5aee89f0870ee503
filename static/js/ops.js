// Operations page: polls /ops/status.json every 2 s and renders it. The message totals are the bridge process's own
// counters, carried by its heartbeat, summed over the bridges reporting (several share the pumps): each bridge's rates
// come from two heartbeats of its own process, and its restart (another process of that name, or a total that went
// down) is a new start, never a negative rate; another bridge's heartbeat is no restart. Figures of a heartbeat that
// is no longer fresh, and every figure once a poll fails, are marked stale with their age: the page never shows old
// figures as current. Times are in the server's configured time zone, as on every page (format.js `clock`), and the
// age of figures no longer refreshed is measured on the page clock, which the PC's clock stepped back cannot shorten.

import { ago, clock, pageClockMs, readPageData, setTimeZone } from "./format.js";

setTimeZone(readPageData().timeZone);

(function () {
  const POLL_MS = 2000;
  let counting = new Map(); // bridge name -> {since, at, received, rates, restarted}: its heartbeat last used
  let rendered = null; // {at, clock}: the server's time of the figures shown, and the page clock then

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
  // The banner is a live region: its text is set only when it changes, so it is not announced again at every poll.
  function say(className, text) {
    const banner = document.getElementById("ops-banner");
    banner.className = "banner " + className;
    if (banner.textContent !== text) banner.textContent = text;
  }

  // Messages per second by kind: each bridge's over two heartbeats of its own process, summed over the bridges
  // counted (several bridges share the pumps, each counting what it receives). A bridge's process is its name and
  // since when its counters count; none ("—") until every bridge counted has given two heartbeats of its process
  // (after a restart: the counters started again from 0), and none while the bridge is not reporting. A bridge's
  // `restarted`: this page saw it restart (its process changed, or a total went down), until its next heartbeat.
  function counters(data) {
    const bridge = data.bridge, stats = bridge.stats || {};
    return data.bridges || [{ name: bridge.name, heartbeatAt: bridge.heartbeatAt,
      countersSince: stats.countersSince, received: data.received }];
  }
  function bridgeCounted(counter) {
    const before = counting.get(counter.name), at = Date.parse(counter.heartbeatAt);
    const since = counter.countersSince || "", received = counter.received;
    const restarted = before !== undefined && (before.since !== since
      || Object.entries(before.received).some(([kind, total]) => (received[kind] || 0) < total));
    if (before === undefined || restarted) return { since, at, received, rates: null, restarted };
    if (!(at > before.at)) return before; // the same heartbeat polled again keeps the rates it gave
    const seconds = (at - before.at) / 1000;
    const rates = Object.fromEntries(Object.entries(received).map(
      ([kind, total]) => [kind, (total - (before.received[kind] || 0)) / seconds]));
    return { since, at, received, rates, restarted: false };
  }
  function ratesPerSecond(data, reporting) {
    const counted = reporting ? counters(data) : [];
    counting = new Map(counted.map(counter => [counter.name, bridgeCounted(counter)]));
    const each = [...counting.values()];
    const restarted = [...counting].filter(([, bridge]) => bridge.restarted).map(([name]) => name);
    if (!each.length || each.some(bridge => bridge.rates === null)) return { rates: {}, restarted };
    const rates = {};
    each.forEach(bridge => Object.entries(bridge.rates).forEach(([kind, rate]) => {
      rates[kind] = (rates[kind] || 0) + rate;
    }));
    const shown = Object.fromEntries(Object.entries(rates).map(([kind, rate]) => [kind, rate.toFixed(1)]));
    return { rates: shown, restarted };
  }

  // Since when the totals count: the bridge's start, or each bridge's when several are counted, and which restarted.
  function countedSince(data, reporting, age, restarted) {
    const bridge = data.bridge, counted = counters(data), since = counted.length ? counted[0].countersSince : null;
    const start = counted.length > 1
      ? `Totals of ${counted.length} bridges since they started: ${counted.map(counter =>
        `${counter.name} at ${counter.countersSince ? clock(counter.countersSince) : "—"}`).join(", ")}`
      : since ? `Totals since the bridge started at ${clock(since)}` : "Totals since the bridge started";
    const which = counted.length > 1
      ? `${restarted.join(" and ")} restarted, ${restarted.length > 1 ? "their" : "its"} totals began again`
      : "it restarted, its totals began again";
    const text = !reporting && bridge.heartbeatAt ? `${start}, from its last heartbeat, ${ago(age)}: not current`
      : restarted.length ? `${start}: ${which}` : start;
    document.querySelectorAll(".ops-counted").forEach(p => {
      p.textContent = text;
      p.classList.toggle("stale", !reporting);
    });
  }

  // Why a live bridge holds no broker session, when it says (`selectors._not_holding_because`, review 34)
  const NOT_HOLDING = {
    schema_behind: "Bridge waiting: the database schema is behind the code (run manage.py migrate)",
    session_taken_over: "Bridge alive, but another client keeps taking its broker session (two bridges with one "
      + "MQTT_CLIENT_ID?)",
  };

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
      bridge.clockAheadS ? `Monitoring degraded: the bridge's heartbeat is stamped ${Math.round(bridge.clockAheadS)} s ` +
        "ahead of this server's clock (clock skew: check the time of the bridge's host), so it proves nothing"
        : !reporting ? "Monitoring degraded: the bridge is not reporting"
        : bridge.brokerConnected ? "Bridge alive and connected to the broker"
        : NOT_HOLDING[bridge.cause] || "Bridge alive, but the broker is unreachable");
    document.getElementById("ops-figures").classList.remove("stale");
    renderBridge(bridge, reporting, age);
    const { rates, restarted } = ratesPerSecond(data, reporting);
    countedSince(data, reporting, age, restarted);
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
    rendered = { at: data.at, clock: pageClockMs() };
  }

  // The poll failed: nothing below is current any more. The banner turns degraded and says from when the figures
  // are; the figures are greyed and the last update's line gives their age.
  function unavailable(reason) {
    const figures = rendered ? ` The figures below are from ${clock(rendered.at)}: not current.` : "";
    say("degraded", `Operations data unavailable: ${reason}.${figures}`);
    document.getElementById("ops-figures").classList.add("stale");
    if (rendered) {
      document.getElementById("ops-at").textContent =
        `${clock(rendered.at)} (${ago((pageClockMs() - rendered.clock) / 1000)}; not refreshed since)`;
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
