// The seed-style relay, as the original Node server did it: mqtt.js -> socket.io rooms, no database, no auth.
//
//   node bench/node/relay.js --broker 127.0.0.1:1883 --port 9000
//
// Progress becomes `device:progress {deviceId, progress}` in room `device:<id>`, an alarm (`devices/<id>/error`)
// `device:alarm {deviceId, alarm}`. `subscribe:device {deviceId}` joins the room and answers `stream:subscribed`.
// A comparison for `make bench` (bench/compare.py), not part of PumpStream. Prints `ready <port>` when listening.
'use strict';
const http = require('http');
const mqtt = require('mqtt');
const { Server } = require('socket.io');

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
}

const broker = option('broker', '127.0.0.1:1883');
const port = Number(option('port', '9000'));
const server = http.createServer();
server.on('connection', (socket) => socket.setNoDelay(true));
const io = new Server(server, { serveClient: false, transports: ['websocket', 'polling'] });

io.on('connection', (socket) => {
  socket.on('subscribe:device', (data) => {
    const deviceId = data && typeof data.deviceId === 'string' ? data.deviceId : null;
    if (!deviceId) return;
    socket.join(`device:${deviceId}`);
    socket.emit('stream:subscribed', { deviceId, room: `device:${deviceId}` });
  });
  socket.on('unsubscribe:device', (data) => data && socket.leave(`device:${data.deviceId}`));
});

const link = mqtt.connect(`mqtt://${broker}`, { clientId: `bench-node-relay-${process.pid}`, clean: true });
link.on('connect', () => {
  if (link.stream && link.stream.setNoDelay) link.stream.setNoDelay(true);
  link.subscribe(['devices/+/progress', 'devices/+/error'], { qos: 1 }, () => {
    server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
  });
});
link.on('message', (topic, payload) => {
  const [, deviceId, kind] = topic.split('/');
  let body;
  try {
    body = JSON.parse(payload.toString());
  } catch (error) {
    return;
  }
  const room = io.to(`device:${deviceId}`);
  if (kind === 'progress') room.emit('device:progress', { deviceId, progress: body });
  else room.emit('device:alarm', { deviceId, alarm: body });
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
