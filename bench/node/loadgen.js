// The Node load generator (mqtt.js): D pumps publishing QoS 1 progress at R Hz each, each on its own phase.
// Same arguments, payload and JSON output as bench/loadgen.py (the Python one), at a fraction of its CPU.
//
//   node bench/node/loadgen.js --broker 127.0.0.1:1883 --pumps pumps.json --rate 1 --start-at T \
//        --warmup 3 --duration 30 --out g.json [--connections 20] [--alarms alarms.json]
//
// Every payload carries `intendedAt` (epoch seconds it was due): latency counts from the schedule, so a
// lagging generator adds its lag to the figures. `--alarms` (JSON [{deviceId, at}]) also publishes one
// alarm per entry at `at` to devices/<id>/error, its `message` holding `injectedAt=<at>`.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
}

const [host, port] = option('broker').split(':');
const deviceIds = JSON.parse(fs.readFileSync(option('pumps')));
const rate = Number(option('rate'));
const startAt = Number(option('start-at'));
const warmup = Number(option('warmup', '3'));
const duration = Number(option('duration'));
const connectionCount = Number(option('connections', '20'));
const alarms = option('alarms') ? JSON.parse(fs.readFileSync(option('alarms'))) : [];
const endAt = startAt + warmup + duration;
const measuredFrom = startAt + warmup;
const tag = Math.random().toString(16).slice(2, 8);
// One boot for every run (a new bootId is a pump restart: it would end the pumps' sessions), and `seq` going
// on from the last run's: based on the start time in tenths of a second (a run's pumps send at most 10 Hz).
const bootId = 'bench-boot';
const seqBase = Math.floor(startAt * 10);

// Each pump's count: 2 mL/min (its session's order) of real time since the bench run began (bench/__init__.py),
// never past 499 of its 500 mL: rounds and the silences between them never show it going back or running ahead.
const countOrigin = Number(process.env.BENCH_COUNT_ORIGIN || startAt);

function progressPayload(seq, intendedAt) {
  const minutes = Math.max(0, intendedAt - countOrigin) / 60;
  const delivered = Math.round(Math.min(minutes * 2, 499) * 1000) / 1000;
  return JSON.stringify({
    timeRemainingMin: Math.max(0, 250 - minutes), volumeRemainingMl: Math.max(0, 500 - delivered),
    deliveredVolumeMl: delivered, elapsedTimeMin: Math.round(minutes * 10000) / 10000, progressPercent: delivered / 5,
    flowRate: 2.0, status: 'running', timestamp: seq * 1000, seq, bootId, intendedAt,
  });
}

function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const pick = (q) => (sorted.length ? Math.round(sorted[Math.max(Math.ceil((q / 100) * sorted.length), 1) - 1] * 100) / 100 : null);
  return { count: sorted.length, p50_ms: pick(50), p90_ms: pick(90), p99_ms: pick(99),
    max_ms: sorted.length ? Math.round(sorted[sorted.length - 1] * 100) / 100 : null };
}

function connect(index) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://${host}:${port}`, {
      clientId: `bench-nodegen-${tag}-${index}`, clean: true, protocolVersion: 5, reconnectPeriod: 0,
    });
    client.once('connect', () => {
      client.stream.setNoDelay(true);
      resolve(client);
    });
    client.once('error', reject);
  });
}

async function main() {
  const links = await Promise.all(Array.from({ length: connectionCount }, (_, n) => connect(n)));
  const interval = 1 / rate;
  const count = deviceIds.length;
  const duePerPump = {};
  const lags = [];
  const pendingAlarms = alarms.slice().sort((a, b) => a.at - b.at);
  const alarmsSent = [];
  let published = 0;
  let acked = 0;
  let seq = 0;
  let index = 0;
  const cpuBefore = process.cpuUsage();
  const onAck = (error) => { if (!error) acked += 1; };

  function publishDue() {
    const now = Date.now() / 1000;
    while (pendingAlarms.length && pendingAlarms[0].at <= now) {
      const alarm = pendingAlarms.shift();
      const body = JSON.stringify({ type: 'bench_storm_alarm', severity: 'high', message: `injectedAt=${alarm.at}` });
      links[0].publish(`devices/${alarm.deviceId}/error`, body, { qos: 1 });
      alarmsSent.push({ deviceId: alarm.deviceId, at: alarm.at, sentAt: Date.now() / 1000 });
    }
    for (;;) {
      const due = startAt + interval * (seq + index / count);
      if (due >= endAt) return null;
      if (due > now) return due;
      const deviceId = deviceIds[index];
      links[index % links.length].publish(`devices/${deviceId}/progress`, progressPayload(seqBase + seq, due), { qos: 1 }, onAck);
      published += 1;
      lags.push((Date.now() / 1000 - due) * 1000);
      if (due >= measuredFrom) duePerPump[deviceId] = (duePerPump[deviceId] || 0) + 1;
      index += 1;
      if (index === count) { index = 0; seq += 1; }
    }
  }

  await new Promise((resolve) => {
    const tick = () => {
      const next = publishDue();
      if (next === null && !pendingAlarms.length) return resolve();
      const wake = Math.min(next === null ? Infinity : next, pendingAlarms.length ? pendingAlarms[0].at : Infinity);
      setTimeout(tick, Math.max(0, (wake - Date.now() / 1000) * 1000));
    };
    tick();
  });
  const deadline = Date.now() + 60000;
  while (acked < published && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const cpu = process.cpuUsage(cpuBefore);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  await Promise.all(links.map((link) => new Promise((r) => link.end(false, {}, r))));
  fs.writeFileSync(option('out'), JSON.stringify({
    generator: 'node', published, unacked: published - acked, due_per_pump: duePerPump, send_lag: percentiles(lags),
    cpu_s: Math.round(cpuS * 100) / 100, cpu_share: Math.round((cpuS / Math.max(endAt - startAt, 1e-9)) * 1000) / 1000,
    alarms: alarmsSent,
  }));
}

main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
