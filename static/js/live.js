// The one Socket.IO connection of a page: a "Live" / "Reconnecting…" banner, automatic resubscription
// after a reconnect, and per-pump `seq` checking (a skipped number means an event was missed, so the
// pump is subscribed again and its snapshot replaces what the page holds).

import { EVENTS } from "./protocol.js";
import { noteServerTime, setMonitoringHealthy } from "./format.js";

const DEVICE_EVENTS = EVENTS.deviceEvents;
// Sent at once to ward feeds: every alarm change of a ward's pump, and the ward's shared silence (v1.1).
const WARD_EVENTS = EVENTS.wardEvents;
const RETRY_AFTER_REFUSAL_MS = 3000;

class DeviceStream {
  constructor(deviceId, onEvent) {
    this.deviceId = deviceId;
    this.onEvent = onEvent;
    this.lastSeq = null; // null until `stream:subscribed` arrives
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
    this.socket.on(EVENTS.wardSummary, (payload) => this.wards.get(payload?.ward)?.(payload));
    this.socket.on(EVENTS.error, (payload) => console.warn("PumpStream server refused a request:", payload));
    this.wardListeners = new Map();
    for (const name of WARD_EVENTS) {
      this.socket.on(name, (payload) => this.wardListeners.get(name)?.forEach((listener) => listener(payload)));
    }
    for (const name of DEVICE_EVENTS) this.socket.on(name, (payload) => this.onDeviceEvent(name, payload));
    window.pumpstreamLive = this; // for diagnostics and the browser tests
  }

  /** Watch one pump: `onEvent(name, payload)` gets its snapshot events, then its live events, in order. */
  subscribeDevice(deviceId, onEvent) {
    this.devices.set(deviceId, new DeviceStream(deviceId, onEvent));
    if (this.socket.connected) this.socket.emit(EVENTS.subscribeDevice, { deviceId });
  }

  unsubscribeDevice(deviceId) {
    this.devices.delete(deviceId);
    if (this.socket.connected) this.socket.emit(EVENTS.unsubscribeDevice, { deviceId });
  }

  /** Watch a ward's coalesced overview ("*" for every pump the user may see). */
  subscribeWard(ward, onSummary) {
    this.wards.set(ward, onSummary);
    if (this.socket.connected) this.socket.emit(EVENTS.subscribeWard, { ward });
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

  onConnect() {
    this.stats.connects += 1;
    for (const stream of this.devices.values()) this.resubscribe(stream, { counted: this.stats.connects > 1 });
    for (const ward of this.wards.keys()) this.socket.emit(EVENTS.subscribeWard, { ward });
    this.setState("live");
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
    this.socket.emit(EVENTS.subscribeDevice, { deviceId: stream.deviceId });
  }

  onSubscribed(payload) {
    const deviceId = payload?.deviceId ?? String(payload?.room ?? "").replace(/^device:/, "");
    const stream = this.devices.get(deviceId);
    if (stream) stream.lastSeq = payload.seq;
  }

  onDeviceEvent(name, payload) {
    const stream = this.devices.get(payload?.deviceId);
    if (!stream) return;
    this.stats.events += 1;
    if (stream.lastSeq === null) return; // between a resubscribe and its snapshot: the snapshot will cover it
    const seq = payload.seq;
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
    if (this.banner) {
      this.banner.dataset.state = state;
      this.banner.textContent = state === "live" ? "Live" : "Reconnecting…";
    }
    document.body.classList.toggle("not-live", state !== "live");
    for (const listener of this.stateListeners) listener(state);
  }
}

/** Shows the "monitoring degraded" banner while the bridge's heartbeat is stale (polled from /readyz-like data). */
export function watchBridge(
  initial,
  { banner = document.getElementById("degraded-banner"), url, everyMs = 5000, onHealth, onSignedOut } = {},
) {
  const show = (bridge) => {
    const healthy = Boolean(bridge?.alive && bridge?.brokerConnected);
    setMonitoringHealthy(healthy);
    if (banner) banner.hidden = healthy;
    onHealth?.(healthy);
  };
  show(initial);
  if (!url) return;
  const poll = async () => {
    try {
      const sentAt = Date.now();
      const response = await fetch(url, { credentials: "same-origin" });
      onSignedOut?.(response.status === 401 || response.status === 403);
      if (!response.ok) return;
      const bridge = await response.json();
      noteServerTime(bridge.serverNow, sentAt); // keeps the page's estimate of the server's clock honest
      show(bridge);
    } catch {
      // unreachable server: the connection banner already says so
    }
  };
  poll(); // at once: a page delivered late (or from a cache) must not keep its render-time clock
  setInterval(poll, everyMs);
}
