// The storm's watchers in Node (socket.io-client, the original's own tool): the same plan, order and
// measurements as bench/storm_watchers.py, at a fraction of its CPU, so that the harness is not what
// starves first when 120 clients receive 2,000 snapshots at once.
//
//   node bench/node/storm_watchers.js --url http://127.0.0.1:8000 --plan plan.json --out raw.json \
//        [--subscribe device|devices]
//
// plan.json: {"sentinels": [[ids]], "storm": [[ids]], "cookies": [..], "events": {progress, alarm,
// subscribed, subscribeDevice, subscribeDevices}} (the event names come from protocol/events.py through
// bench/storm.py). Prints `ready` once the sentinels are subscribed, then reads one line of JSON from stdin:
// {"stormAt", "until", "drain", "spread", "alarms": [{deviceId, at}]}. Writes the raw figures (per-role
// delivery counts and latencies, each subscription's delivery time, each alarm's arrival) for
// `bench.storm.node_watchers_result` to summarise as the Python watchers' result is.
'use strict';
const fs = require('fs');
const readline = require('readline');
const { io } = require('socket.io-client');

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
}

const url = option('url');
const plan = JSON.parse(fs.readFileSync(option('plan')));
const out = option('out');
const batched = option('subscribe', 'device') === 'devices';
const names = plan.events;
const CONNECT_CONCURRENCY = 10; // as bench/watchers.py: Daphne is not flooded with the sentinels' handshakes

// One tracker per role: a delivery is keyed by (watcher, pump, intendedAt); a key seen before is a
// duplicate, a new key older than the stream's newest a reordering (bench/stats.py's DeliveryTracker).
function tracker() {
  return { received: 0, duplicates: 0, reorders: 0, latencies_ms: [], streams: new Map() };
}
const live = { sentinel: tracker(), storm: tracker() };
const subscribedMs = [];
const alarmMs = new Map(); // `${watcher}|${pump}` -> ms from injection to arrival
const connectFailures = [];
let measuredFrom = Infinity;
let until = Infinity;
let injected = new Map(); // pump -> injection time of this storm's alarm

function record(role, watcher, data) {
  const intended = data.progress && data.progress.intendedAt;
  if (intended === undefined || intended === null || intended < measuredFrom || intended >= until) return;
  const part = live[role];
  const key = `${watcher}|${data.deviceId}`;
  let stream = part.streams.get(key);
  if (!stream) part.streams.set(key, (stream = { seen: new Set(), newest: -Infinity }));
  if (stream.seen.has(intended)) {
    part.duplicates += 1;
    return;
  }
  stream.seen.add(intended);
  if (intended < stream.newest) part.reorders += 1;
  else stream.newest = intended;
  part.received += 1;
  part.latencies_ms.push(Math.round((Date.now() / 1000 - intended) * 1e6) / 1000);
}

function alarm(watcher, data) {
  const at = injected.get(data.deviceId);
  const message = (data.alarm && data.alarm.message) || '';
  const key = `${watcher}|${data.deviceId}`;
  if (at === undefined || !message.includes(`injectedAt=${at}`) || alarmMs.has(key)) return;
  alarmMs.set(key, (Date.now() / 1000 - at) * 1000);
}

// One signed-in client subscribing to `pumps`; resolves once all are confirmed (or after 60 s).
function watcher(cookie, index, pumps, role, startedAt) {
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ['websocket'], extraHeaders: { Cookie: cookie }, reconnection: false, forceNew: true,
      timeout: 30000,
    });
    const confirmed = new Set();
    const timer = setTimeout(() => resolve(socket), 60000); // what is not confirmed counts as not delivered
    socket.on(names.progress, (data) => record(role, index, data));
    socket.on(names.alarm, (data) => alarm(index, data));
    socket.on(names.subscribed, (data) => {
      if (!confirmed.has(data.deviceId)) {
        confirmed.add(data.deviceId);
        if (startedAt !== undefined) subscribedMs.push(Date.now() - startedAt * 1000);
      }
      if (confirmed.size === pumps.length) {
        clearTimeout(timer);
        resolve(socket);
      }
    });
    socket.on('connect_error', (error) => {
      connectFailures.push(`${role} ${index}: ${error.message}`);
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on('connect', () => {
      if (batched && role === 'storm') socket.emit(names.subscribeDevices, { deviceIds: pumps });
      else for (const deviceId of pumps) socket.emit(names.subscribeDevice, { deviceId });
    });
  });
}

async function bounded(factories) {
  const results = [];
  for (let i = 0; i < factories.length; i += CONNECT_CONCURRENCY) {
    results.push(...(await Promise.all(factories.slice(i, i + CONNECT_CONCURRENCY).map((make) => make()))));
  }
  return results;
}

const sleepUntil = (epochS) => new Promise((resolve) => setTimeout(resolve, Math.max(0, epochS * 1000 - Date.now())));

async function main() {
  const sentinels = plan.sentinels;
  const stormPlan = plan.storm;
  const offset = sentinels.length;
  const clients = await bounded(sentinels.map((pumps, i) => () =>
    watcher(plan.cookies[stormPlan.length + i], i, pumps, 'sentinel')));
  process.stdout.write('ready\n');
  const order = JSON.parse(await new Promise((resolve) => {
    readline.createInterface({ input: process.stdin }).once('line', resolve);
  }));
  measuredFrom = order.stormAt;
  until = order.until;
  injected = new Map(order.alarms.map((entry) => [entry.deviceId, entry.at]));
  const stormers = stormPlan.map(async (pumps, i) => {
    const start = order.stormAt + (i / stormPlan.length) * order.spread;
    await sleepUntil(start);
    return watcher(plan.cookies[i], offset + i, pumps, 'storm', start);
  });
  await sleepUntil(order.until + order.drain);
  clients.push(...(await Promise.all(stormers)));
  for (const socket of clients) socket.close();
  const watchersOf = new Map();
  [...sentinels, ...stormPlan].forEach((pumps) => {
    for (const deviceId of pumps) watchersOf.set(deviceId, (watchersOf.get(deviceId) || 0) + 1);
  });
  let expected = 0;
  for (const deviceId of injected.keys()) expected += watchersOf.get(deviceId) || 0;
  const summary = (part) => ({ received: part.received, duplicates: part.duplicates, reorders: part.reorders,
    latencies_ms: part.latencies_ms });
  fs.writeFileSync(out, JSON.stringify({
    live: { sentinel: summary(live.sentinel), storm: summary(live.storm) },
    subscriptions: { requested: stormPlan.reduce((sum, pumps) => sum + pumps.length, 0), delivered_ms: subscribedMs },
    connect_failures: connectFailures,
    alarms: { injected: injected.size, expected, arrived_ms: [...alarmMs.values()] },
    cpu_s: (({ user, system }) => (user + system) / 1e6)(process.cpuUsage()),
  }));
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
