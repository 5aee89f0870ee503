// The one Socket.IO connection of a page: a "Live" / "Reconnecting…" banner, automatic resubscription
// after a reconnect, and per-pump `seq` checking (a skipped number means an event was missed, so the
// pump is subscribed again and its snapshot replaces what the page holds: `stream:subscribed` says how many
// events the snapshot has, and they are handed over together once all have arrived, docs/protocol.md).
// A pump or ward feed the server stops sending (the right to watch it withdrawn, a snapshot not read, the pump
// deleted: `device:removed`) is said on the banner: the page is then not live for it.
// A stream is awaited from each (re)subscription until its answer is in (a pump's snapshot, a ward's full summary):
// what the page held before is no news of now, so it is not received meanwhile (`isReceiving`, `wardsReceiving`),
// though the socket is live. Set live as the socket connected, the pages vouched again with what they held from
// before a loss ("No active alarms.", "Online", "1 idle") while an occlusion raised meanwhile had not reached them
// (review 37, finding 4). The banner says so ("Not live: waiting for the server's answer…", never "Live" while a
// stream asked for is not received), and one asked for and unanswered for over ANSWER_GRACE_MS while connected (a
// server that takes the socket and never answers: overloaded, its database away) is `unanswered`: the station raises
// its technical alarm, the monitor its notice (review 39, finding 2: "Live" for as long as it lasted).
// A connection that goes silent without closing (a black-holed network) is said within seconds: the server pings every
// SOCKETIO_PING_INTERVAL_S (8 s, docs/protocol.md), so nothing heard for a ping interval and SILENT_GRACE_MS means not
// live ("Reconnecting…"); socket.io-client closes the socket and reconnects once the ping's timeout has passed too.
// The silence is timed on the page clock (page_clock.js): the PC's clock stepped back never hides it (review 35).

import { pageClockMs } from "./page_clock.js";
import { EVENTS } from "./protocol.js";

export { watchBridge } from "./bridge_watch.js";

const DEVICE_EVENTS = EVENTS.deviceEvents;
// Sent at once to ward feeds: every alarm change of a ward's pump, and the ward's shared silence (v1.1).
const WARD_EVENTS = EVENTS.wardEvents;
const RETRY_AFTER_REFUSAL_MS = 3000;
// at most 15 s: a pump refused while the database was away is live again within 15 s of its return (60 s before: a
// screen "Not live" for up to a minute after a short outage), each delay spread by a fifth either way so that a ward's
// screens refused together do not all ask again in the same instant; the spread is inside the 15 s (the longest delay
// is 12.5 s spread: 10 to 15 s; capped before the spread, up to 18 s, review 39)
const RETRY_AT_MOST_MS = 15000;
const RETRY_SPREAD = 0.2;
// Connected, a stream asked for and not answered for longer than this: `unanswered` (the station's technical alarm,
// the monitor's notice), as the station says a connection lost for as long.
export const ANSWER_GRACE_MS = 10_000;
const WAITING_MESSAGE = "waiting for the server's answer…";
// Nothing heard (an event or the server's ping) for the ping interval plus this: the connection is silent.
const SILENT_GRACE_MS = 2500;
const SILENT_CHECK_EVERY_MS = 500;
const ENGINE_PING_INTERVAL_MS = 25000; // Engine.IO's default, until the server's handshake says its own
// Refusals of a pump that are asked again later, waiting twice as long after each (realtime/sio/subscriptions.py
// SNAPSHOT_FAILED, a snapshot not read; realtime/sio/limits.py, the connection's request rate exceeded).
const SUBSCRIBE_LATER = /subscribe again|too many requests/i;
/** Whether the server's stop of a pump with this message is for a moment only: the page asks for it again. */
export const asksAgainAfter = (message) => SUBSCRIBE_LATER.test(String(message ?? ""));
// The pump was deleted (`device:removed`, or the `error` "Pump removed…" of a subscription still waiting for its
// snapshot, or "Invalid Device ID" when the page subscribes again to a pump it watched, the removal missed while it was
// offline): it is no longer monitored, and a pump registered again under its id is another pump (reload).
const PUMP_REMOVED = /pump removed|invalid device id/i;
const REMOVED_MESSAGE = "Pump removed (deleted by an administrator): it is no longer monitored";

class DeviceStream {
  constructor(deviceId, onEvent, { onSnapshot = null, onStopped = null } = {}) {
    this.deviceId = deviceId;
    this.onEvent = onEvent;
    this.onSnapshot = onSnapshot; // (events) => …: the whole snapshot at once, replacing what the page held
    this.onStopped = onStopped; // (message) => …: the server no longer sends this pump's events
    this.lastSeq = null; // null until `stream:subscribed` arrives
    this.snapshot = null; // {seq, expected, events} while a snapshot's events arrive
  }
}

export class LiveConnection {
  /** `onUnauthorized`: the session ended elsewhere (default: reload, and the server asks to sign in). */
  constructor({ banner = document.getElementById("connection-banner"), onUnauthorized = () => window.location.reload() } = {}) {
    this.onUnauthorized = onUnauthorized;
    this.banner = banner;
    this.devices = new Map();
    this.wards = new Map();
    this.stateListeners = new Set();
    this.stats = { gaps: 0, resubscribes: 0, connects: 0, events: 0 };
    this.state = "connecting";
    // eslint-disable-next-line no-undef
    this.socket = io({ path: "/socket.io/", transports: ["websocket", "polling"], withCredentials: true });
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("disconnect", (reason) => this.onDisconnect(reason));
    this.socket.on("connect_error", (error) => this.onConnectError(error));
    this.socket.on(EVENTS.streamSubscribed, (payload) => this.onSubscribed(payload));
    this.socket.on(EVENTS.wardSummary, (payload) => this.onWardSummary(payload));
    this.socket.on(EVENTS.error, (payload) => this.onServerError(payload));
    this.watchSilence();
    this.stopped = new Map(); // deviceId (or "ward <code>") -> why the server no longer sends its events
    this.refusals = new Map(); // deviceId or "ward <code>" -> refusals in a row (each retry waits twice as long)
    this.stopListeners = new Set();
    this.refusalListeners = new Set();
    // deviceId or "ward <code>" -> since when (page clock) it is (re)subscribed on this connection, its snapshot or
    // full summary not yet in
    this.awaiting = new Map();
    this.resumeListeners = new Set();
    this.wardListeners = new Map();
    for (const name of WARD_EVENTS) {
      this.socket.on(name, (payload) => this.wardListeners.get(name)?.forEach((listener) => listener(payload)));
    }
    for (const name of DEVICE_EVENTS) this.socket.on(name, (payload) => this.onDeviceEvent(name, payload));
    window.pumpstreamLive = this; // for diagnostics and the browser tests
  }

  /** Watch one pump: `onEvent(name, payload)` gets its live events in order; each snapshot goes whole to
   * `onSnapshot([[name, payload], …])` (without it, event by event to `onEvent`); `onStopped(message, {removed})` is
   * told when the server stops sending the pump (no longer permitted to watch it, or it is gone: `removed`). */
  subscribeDevice(deviceId, onEvent, { onSnapshot, onStopped } = {}) {
    this.devices.set(deviceId, new DeviceStream(deviceId, onEvent, { onSnapshot, onStopped }));
    this.stopped.delete(deviceId);
    this.renderBanner();
    this.askDevice(deviceId);
  }

  unsubscribeDevice(deviceId) {
    this.devices.delete(deviceId);
    this.stopped.delete(deviceId);
    this.awaiting.delete(deviceId);
    this.refusals.delete(deviceId);
    this.renderBanner();
    if (this.socket.connected) this.socket.emit(EVENTS.unsubscribeDevice, { deviceId });
  }

  /** Whether the pump's events arrive: connected, its snapshot of this subscription in, and the server has not
   * stopped sending them (nor is asked again). */
  isReceiving(deviceId) {
    return this.isLive && this.devices.has(deviceId) && !this.stopped.has(deviceId) && !this.awaiting.has(deviceId);
  }

  /** Whether every ward feed of this page arrives: connected, each one's full summary of this subscription in, none
   * stopped. */
  get wardsReceiving() {
    const wardKeys = [...this.stopped.keys(), ...this.awaiting.keys()].filter((key) => key.startsWith("ward "));
    return this.isLive && wardKeys.length === 0;
  }

  /** Whether the pump (a deviceId) or the ward feed ("ward <code>"), asked for on this connection, has waited for its
   * answer for over ANSWER_GRACE_MS while connected. The pages check it each second. */
  unanswered(key) {
    return this.isLive && this.awaiting.has(key) && pageClockMs() - this.awaiting.get(key) > ANSWER_GRACE_MS;
  }

  /** Whether a ward feed of this page is `unanswered`. */
  get wardsUnanswered() {
    return [...this.awaiting.keys()].some((key) => key.startsWith("ward ") && this.unanswered(key));
  }

  /** `key` is asked for: awaited from now, or from its first ask on this connection if it still waits for that. */
  awaitAnswer(key) {
    if (!this.awaiting.has(key)) this.awaiting.set(key, pageClockMs());
    this.renderBanner();
  }

  /** Send `subscribe:device` (when connected): the pump is awaited until its snapshot is in. */
  askDevice(deviceId) {
    if (!this.socket.connected) return;
    this.awaitAnswer(deviceId);
    this.socket.emit(EVENTS.subscribeDevice, { deviceId });
  }

  /** Watch a ward's coalesced overview ("*" for every pump the user may see). */
  subscribeWard(ward, onSummary) {
    this.wards.set(ward, onSummary);
    this.askWard(ward);
  }

  /** Send `subscribe:ward` (when connected): the feed is awaited until its full summary is in. */
  askWard(ward) {
    if (!this.socket.connected) return;
    this.awaitAnswer(`ward ${ward}`);
    this.socket.emit(EVENTS.subscribeWard, { ward });
  }

  /** Listen to a ward feed's `ward:alarm` or `ward:silence` (every ward this page subscribed to). */
  onWardEvent(name, listener) {
    if (!this.wardListeners.has(name)) this.wardListeners.set(name, new Set());
    this.wardListeners.get(name).add(listener);
  }

  /** Send a request; false when not connected (nothing is queued for later). */
  request(name, payload) {
    if (!this.socket.connected) return false;
    this.socket.emit(name, payload);
    return true;
  }

  onStateChange(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
  }

  get isLive() {
    return this.state === "live";
  }

  /** The page's watchdog: each engine's handshake gives the server's ping interval; an event or a ping is heard. */
  watchSilence() {
    this.silentAfterMs = ENGINE_PING_INTERVAL_MS + SILENT_GRACE_MS;
    this.heardAt = pageClockMs();
    const onHandshake = () => this.socket.io.engine?.once("handshake", ({ pingInterval } = {}) => {
      if (pingInterval > 0) this.silentAfterMs = pingInterval + SILENT_GRACE_MS;
    });
    onHandshake(); // the first engine, opened by io() before its handshake can have arrived
    // each reconnection opens a new engine right after this event: hooked before any of its packets can arrive
    this.socket.io.on("reconnect_attempt", () => queueMicrotask(onHandshake));
    this.socket.io.on("ping", () => this.heard());
    this.socket.onAny(() => this.heard());
    setInterval(() => this.checkSilence(), SILENT_CHECK_EVERY_MS);
  }

  heard() {
    this.heardAt = pageClockMs();
    if (this.state === "silent") this.setState("live"); // late, not lost: the connection held every event
  }

  /** Connected, yet nothing heard for longer than a ping interval and its grace: not live, whatever the socket says. */
  checkSilence() {
    const silentMs = pageClockMs() - this.heardAt; // never shortened by the PC's clock stepped back
    if (this.state === "live" && silentMs > this.silentAfterMs) {
      console.warn(`PumpStream: nothing received for ${silentMs} ms; the connection is silent`);
      this.setState("silent");
    }
  }

  onConnect() {
    this.heardAt = pageClockMs();
    this.stats.connects += 1;
    this.awaiting.clear(); // each is asked again on this connection: awaited from now
    for (const stream of this.devices.values()) this.resubscribe(stream, { counted: this.stats.connects > 1 });
    for (const ward of this.wards.keys()) this.askWard(ward);
    this.setState("live"); // the socket is; each stream is received again once its snapshot or summary is in
  }

  onDisconnect(reason) {
    this.setState("reconnecting");
    // A server-side disconnect is not retried by socket.io itself.
    if (reason === "io server disconnect") setTimeout(() => this.socket.connect(), RETRY_AFTER_REFUSAL_MS);
  }

  onConnectError(error) {
    // The session ended (signed out elsewhere, expired, deactivated): reload, and the server asks to sign in.
    if (error?.message === "unauthorized") {
      this.onUnauthorized();
      return;
    }
    this.setState("reconnecting");
    if (!this.socket.active) setTimeout(() => this.socket.connect(), RETRY_AFTER_REFUSAL_MS);
  }

  resubscribe(stream, { counted = true } = {}) {
    if (counted) this.stats.resubscribes += 1;
    stream.lastSeq = null;
    stream.snapshot = null;
    this.askDevice(stream.deviceId);
  }

  onSubscribed(payload) {
    const deviceId = payload?.deviceId ?? String(payload?.room ?? "").replace(/^device:/, "");
    const stream = this.devices.get(deviceId);
    if (!stream) return;
    stream.lastSeq = payload.seq;
    // The snapshot is complete once `snapshotEvents` events with its `seq` have arrived (a server without the
    // count: its events go one by one to `onEvent`, as live events do).
    const expected = payload.snapshotEvents;
    const whole = Boolean(stream.onSnapshot) && Number.isInteger(expected);
    stream.snapshot = whole ? { seq: payload.seq, expected, events: [] } : null;
    if (!whole) this.resumed(stream);
    else if (expected <= 0) this.snapshotComplete(stream);
  }

  /** Hand the snapshot's events over at once: the page replaces what it held for the pump with them. */
  snapshotComplete(stream) {
    const { events } = stream.snapshot;
    stream.snapshot = null;
    this.resumed(stream);
    stream.onSnapshot(events);
  }

  /** A pump's snapshot is here (subscribed again after a loss, a gap or a refusal): it is received again. */
  resumed(stream) {
    this.awaiting.delete(stream.deviceId);
    this.refusals.delete(stream.deviceId);
    this.stopped.delete(stream.deviceId);
    this.renderBanner();
  }

  /** A ward feed's summary. Its subscription's full one (every pump of the feed) makes it received again (after a
   * refusal: `onStreamResumed` told); one of only the pumps that changed leaves the others as held from before, no
   * news of now (review 39, finding 3: any summary did). */
  onWardSummary(payload) {
    const ward = payload?.ward;
    const onSummary = this.wards.get(ward);
    if (!onSummary) return;
    const key = `ward ${ward}`;
    if (payload.full === true) this.awaiting.delete(key); // before the page renders it
    onSummary(payload);
    if (payload.full !== true) return;
    this.refusals.delete(key);
    const wasStopped = this.stopped.delete(key);
    this.renderBanner();
    if (wasStopped) for (const listener of this.resumeListeners) listener({ ward });
  }

  /** `listener({ward})` when a ward feed stopped by a refusal ("Too many requests") is received again. */
  onStreamResumed(listener) {
    this.resumeListeners.add(listener);
  }

  /** Whether a ward feed of this page is stopped. */
  get wardStopped() {
    return [...this.stopped.keys()].some((key) => key.startsWith("ward "));
  }

  /** `listener({request, message})` when the server refuses a request that names no stream of this page (such as a
   * `silence:ward` that arrived too late): the page tells whoever asked that it was not done. */
  onRefusal(listener) {
    this.refusalListeners.add(listener);
  }

  /** `listener({deviceId | ward, message})` when the server stops sending a pump or a ward feed of this page. */
  onStreamStopped(listener) {
    this.stopListeners.add(listener);
  }

  /** `error`: one naming a pump or ward feed this page watches means the server no longer sends it. */
  onServerError(payload) {
    // a refused unsubscribe names its pump or ward too: the page no longer waits for it (or subscribed it anew since)
    const unsubscribe = [EVENTS.unsubscribeDevice, EVENTS.unsubscribeWard].includes(payload?.request);
    if (!unsubscribe && payload?.ward && this.wards.has(payload.ward)) {
      this.stopWard(payload.ward, String(payload.message ?? "refused"));
      return;
    }
    const stream = unsubscribe ? null : this.devices.get(payload?.deviceId);
    if (!stream) {
      console.warn("PumpStream server refused a request:", payload);
      for (const listener of this.refusalListeners) listener(payload);
      return;
    }
    const message = String(payload.message ?? "refused");
    const removed = PUMP_REMOVED.test(message);
    this.stopDevice(stream, removed ? REMOVED_MESSAGE : message, { removed });
    if (SUBSCRIBE_LATER.test(message)) this.subscribeLater(stream, message);
  }

  /** The server sends no more of this pump's events: the page says so (`onStopped`, the stop listeners). */
  stopDevice(stream, message, { removed = false } = {}) {
    console.warn(`PumpStream: ${stream.deviceId} is no longer received: ${message}`);
    this.devices.delete(stream.deviceId);
    this.awaiting.delete(stream.deviceId);
    this.stopped.set(stream.deviceId, message);
    this.renderBanner();
    stream.onStopped?.(message, { removed });
    for (const listener of this.stopListeners) listener({ deviceId: stream.deviceId, message, removed });
  }

  /** Subscribe a refused pump again after about 3 s, twice as long after each further refusal (15 s at most); it
   * stays "Not live" until its snapshot is here. */
  subscribeLater(stream, message) {
    const { deviceId } = stream;
    this.later(deviceId, () => {
      if (!this.stopped.has(deviceId) || this.devices.has(deviceId)) return; // unsubscribed or subscribed anew
      this.devices.set(deviceId, new DeviceStream(deviceId, stream.onEvent, stream));
      this.stopped.set(deviceId, `${message}; subscribing again`);
      this.renderBanner();
      this.askDevice(deviceId);
    });
  }

  /** A ward feed the server stopped (no longer permitted to watch the ward, the ward removed; "Too many requests":
   * asked again later, as a pump is, and not live until its summary is here). */
  stopWard(ward, message) {
    console.warn(`PumpStream: ward feed ${ward} is no longer received: ${message}`);
    const onSummary = this.wards.get(ward);
    this.wards.delete(ward);
    this.awaiting.delete(`ward ${ward}`);
    this.stopped.set(`ward ${ward}`, message);
    this.renderBanner();
    for (const listener of this.stopListeners) listener({ ward, message });
    if (!SUBSCRIBE_LATER.test(message)) return;
    this.later(`ward ${ward}`, () => {
      if (this.wards.has(ward) || !this.stopped.has(`ward ${ward}`)) return;
      this.stopped.set(`ward ${ward}`, `${message}; subscribing again`);
      this.subscribeWard(ward, onSummary);
      this.renderBanner();
    });
  }

  /** Run `again` after about 3 s, twice as long after each further refusal of `key` (15 s at most). */
  later(key, again) {
    const refusals = this.refusals.get(key) ?? 0;
    this.refusals.set(key, refusals + 1);
    const spread = 1 - RETRY_SPREAD + 2 * RETRY_SPREAD * Math.random();
    const longest = RETRY_AT_MOST_MS / (1 + RETRY_SPREAD); // spread up by a fifth, it is RETRY_AT_MOST_MS
    setTimeout(again, Math.min(RETRY_AFTER_REFUSAL_MS * 2 ** refusals, longest) * spread);
  }

  onDeviceEvent(name, payload) {
    const stream = this.devices.get(payload?.deviceId);
    if (!stream) return;
    this.stats.events += 1;
    // the pump's last event, whenever it comes (also while a snapshot is awaited: none will come)
    if (name === EVENTS.deviceRemoved) {
      this.stopDevice(stream, REMOVED_MESSAGE, { removed: true });
      return;
    }
    if (stream.lastSeq === null) return; // between a resubscribe and its snapshot: the snapshot will cover it
    const seq = payload.seq;
    if (stream.snapshot) {
      if (seq === stream.snapshot.seq) {
        stream.snapshot.events.push([name, payload]);
        if (stream.snapshot.events.length >= stream.snapshot.expected) this.snapshotComplete(stream);
        return;
      }
      this.snapshotComplete(stream); // never expected (the server sends them all first): what came is the snapshot
    }
    if (typeof seq === "number" && seq > stream.lastSeq + 1) {
      this.stats.gaps += 1;
      console.warn(`PumpStream: missed events for ${stream.deviceId} (${stream.lastSeq} → ${seq}); resubscribing`);
      this.resubscribe(stream);
      return;
    }
    if (typeof seq === "number" && seq > stream.lastSeq) stream.lastSeq = seq;
    stream.onEvent(name, payload);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.renderBanner();
    for (const listener of this.stateListeners) listener(state);
  }

  /** "Live", "Reconnecting…" (also while silent), or, connected: a watched pump or feed stopped, "Not live" with
   * why; one asked for and not yet answered, "Not live: waiting for the server's answer…" (never "Live" while a
   * stream of the page is not received). */
  renderBanner() {
    const stopped = [...this.stopped].map(([deviceId, message]) => `${message} (${deviceId})`);
    const waiting = [...this.awaiting.keys()].some((key) => !this.stopped.has(key)) ? [WAITING_MESSAGE] : [];
    const connected = this.state === "live";
    const state = connected && stopped.length ? "stopped" : connected && waiting.length ? "awaiting" : this.state;
    if (this.banner) {
      this.banner.dataset.state = state;
      const notLive = `Not live: ${[...stopped, ...waiting].join("; ")}`;
      const texts = { live: "Live", connecting: "Connecting…", stopped: notLive, awaiting: notLive };
      const text = texts[state] ?? "Reconnecting…";
      if (this.banner.textContent !== text) this.banner.textContent = text;
    }
    document.body.classList.toggle("not-live", state !== "live");
  }
}
