// The nurse station's own alerting, on the ward overview: the ward's active alarms listed the most urgent
// first (alarm_order.js), the top one in the tab title and a full-width banner, sounded with the high and medium
// patterns of alarm_audio.js; and the station's technical alarm when it cannot do its job (signed out,
// connection lost for more than 10 s, monitoring degraded), shown full-width and sounded too.
// Its silence covers only the alarms she saw: the ward's silence names those that had been on this screen for at least
// STEADY_MS when she pressed (`seen`), and the server refuses it while another would sound through it; this screen's
// own silence is judged here (alarm_audio.js `silencePressed`). Either refusal is said under the silence line.

import { EVENTS } from "./protocol.js";
import { AlarmAudio } from "./alarm_audio.js";
import { byUrgency } from "./alarm_order.js";
import { PRIORITY_LABEL, humanType, lastingFor, pageClockMs, serverNowMs } from "./format.js";
import { isolated, placeRows, setSentence, setText } from "./keyed_rows.js";
import { ANSWER_GRACE_MS } from "./live.js";
import { STEADY_MS } from "./steady_time.js";

const CONNECTION_GRACE_MS = 10_000;
const ESCALATED_RATE = 1.5; // the high pattern, half as fast again, when an alarm escalated unanswered
const TECHNICAL = {
  signedOut: "Signed out: this screen no longer receives alarms. Sign in again.",
  connection: "Connection lost for more than 10 s: this screen is not receiving alarms.",
  unreachable: "The server does not answer: this screen may not be receiving alarms.",
  // as the server renders it when monitoring is degraded as the page is served (templates/devices/_station.html)
  degraded: document.getElementById("station-technical-alarm")?.dataset.degraded ?? "Monitoring degraded",
  feedStopped: "Not receiving the ward's alarms: the server stopped this screen's feed (no longer permitted to " +
    "watch the ward, or the ward removed; or it could not answer it for now, and the screen asks again). Reload the " +
    "page if it persists.",
  feedAwaited: "Not receiving the ward's alarms: connected, but the server has not answered this screen's " +
    `subscription for more than ${ANSWER_GRACE_MS / 1000} s. Reload the page if it persists.`,
};
const byId = (id) => document.getElementById(id);

export class Station {
  /** `wards`: the ward codes this page shows; its silence button silences all of them (silence:ward). `silences`: the
   * `ward:silence` bodies of those silenced when the server rendered the page, shown and applied from its first
   * update (the server's page shows them: templates/devices/_station.html). */
  constructor({ live, monitorUrl, wards = [], canSilence = true, silenceS = 120, silences = [] }) {
    this.root = byId("station");
    this.live = live;
    this.wards = wards;
    this.canSilence = canSilence; // a view-only wall screen's button silences that screen only
    this.silenceMs = silenceS * 1000; // the configured default, as the button's label says
    this.monitorUrl = monitorUrl;
    this.baseTitle = document.title;
    this.alarms = [];
    this.items = new Map(); // alarm key -> its entry in the list, kept and updated in place (keyboard focus stays)
    // The server renders the station as its first update does, before the page is live (devices/views/
    // overview_before_live.py): its entries are kept, not made anew, and nothing is rendered before that update (the
    // page makes it at once), so the cards below do not move as the script runs (they moved 185 px on a laptop).
    for (const item of byId("station-alarm-list").children) if (item.dataset.key) this.items.set(item.dataset.key, item);
    this.updated = false;
    this.heldSilences = silences;
    this.problems = new Set();
    this.refusals = new Map(); // ward code ("" for this screen's own silence) -> why its silence was not made
    this.silences = new Map(); // ward code -> its shared silence, with `endsAt` on this screen's clock
    this.shownSince = new Map(); // an alarm's alert and tier shown here (`seenKey`) -> {seen, since} (page clock)
    this.audio = new AlarmAudio({
      root: this.root,
      high: byId("station-audio-high"),
      medium: byId("station-audio-medium"),
      stateLabel: byId("station-audio-state"),
      enableButton: byId("station-audio-enable"),
      silenceButton: byId("station-audio-silence"),
      onSilence: () => this.silenceWards(),
      onSilencePressed: (refusal) => (refusal ? this.silenceRefused(refusal) : this.clearRefusal()),
    });
    const end = byId("station-silence-end");
    if (end) end.hidden = !canSilence;
    end?.addEventListener("click", () => this.silenceWards(0));
    byId("station-audio-silence").disabled = false; // the server's, disabled until the script takes it
    this.labelSilence(live.isLive); // not live yet: it silences this screen, as the server's page says
    live.onWardEvent(EVENTS.wardSilence, (body) => this.silenceChanged(body));
    live.onStateChange((state) => this.connectionChanged(state));
    live.onRefusal((refusal) => refusal?.request === EVENTS.silenceWard &&
      this.silenceRefused(refusal.message, refusal.requestWard));
    live.onStreamStopped(({ ward }) => ward && this.setProblem("feedStopped", true));
    live.onStreamResumed(({ ward }) => ward && this.setProblem("feedStopped", live.wardStopped)); // asked again
    window.pumpstreamStation = this; // for the browser tests
  }

  /** Ask the server to silence (or, with 0, to sound again) every ward of this page; not live: this screen only.
   * Decided by the label's own test (`labelSilence`): on a stalled network the socket stays connected for up to 28 s,
   * and a request sent into it would arrive later as the ward's silence where the button said "this screen" (review
   * 32). `askedAt`, on the server's clock as the page knows it, lets the server refuse one that was held up; `seen`,
   * the alarms she saw, one that would cover an alarm she did not (each ward judges its own: one may be silenced and
   * another refused). */
  silenceWards(seconds) {
    const request = seconds === 0 ? { seconds: 0 } : { reason: "Attending the alarm", seen: this.seenAlarms() };
    const askedAt = new Date(serverNowMs()).toISOString();
    const asked = this.asksTheWard(this.live.isLive) ? this.wards : [];
    const sent = asked.map((ward) => this.live.request(EVENTS.silenceWard, { ward, ...request, askedAt }));
    if (seconds !== 0 && !sent.some(Boolean)) this.audio.silencePressed(this.silenceMs);
  }

  /** The alarms on this screen for at least STEADY_MS, as `{id, alerts, tier}`: those she may have seen. */
  seenAlarms() {
    const now = pageClockMs();
    return [...this.shownSince.values()].filter(({ since }) => now - since >= STEADY_MS).map(({ seen }) => seen);
  }

  /** Note since when each alarm's alert and tier is shown (a new alert or tier is another thing to see). */
  noteShown() {
    const now = pageClockMs();
    const shown = this.alarms.map(seenOf).filter(Boolean);
    this.shownSince = new Map(shown.map((seen) => {
      const key = `${seen.id}:${seen.alerts}:${seen.tier}`;
      return [key, this.shownSince.get(key) ?? { seen, since: now }];
    }));
  }

  /** The server refused this page's silence of `ward` (asked too late, not permitted, an alarm she had not seen), or
   * this screen's own (no ward): nothing was silenced, so the nurse who pressed is told, for 15 s or until its silence
   * begins, instead of believing the ward is quiet; on a station of several wards, of which ward (one may be silenced
   * and another refused: before, the line could not say which). */
  silenceRefused(message, ward = "") {
    this.refusals.set(ward ?? "", String(message ?? "refused by the server"));
    this.renderRefusals();
    clearTimeout(this.refusalTimer);
    this.refusalTimer = setTimeout(() => this.clearRefusal(), 15_000);
  }

  /** A silence began: what was said of `ward`'s refusal is over, and of one that named no ward (this screen's own,
   * a refusal of a server that names none); of every refusal when no ward is named. */
  clearRefusal(ward) {
    if (ward === undefined) this.refusals.clear();
    else this.refusals.delete(ward);
    this.refusals.delete("");
    this.renderRefusals();
  }

  renderRefusals() {
    const note = byId("station-silence-refused");
    if (!note) return;
    const of = (ward) => (this.wards.length > 1 && ward ? ` in ward ${ward}` : "");
    setText(note, [...this.refusals].map(([ward, why]) => `Not silenced${of(ward)}: ${why}`).join(" "));
    note.hidden = this.refusals.size === 0;
  }

  /** A ward's shared silence began, changed or ended (`ward:silence`), or its state on a (re)subscription: on, or
   * not (then a silence this screen held for the ward, whose end it may have missed while offline, ends here). */
  silenceChanged(body) {
    if (!body?.ward) return;
    if (body.active) {
      this.silences.set(body.ward, { ...body, endsAt: pageClockMs() + body.remainingS * 1000 });
      this.clearRefusal(body.ward); // asked again, and done
    }
    else if (!this.silences.delete(body.ward)) return; // none held: this screen's own silence (if any) stays
    this.applySilence();
    this.render();
  }

  /** The page's sound is silenced while every ward it shows is (until the first of them ends). */
  applySilence() {
    const now = pageClockMs();
    const ends = this.wards.map((ward) => this.silences.get(ward)?.endsAt ?? 0);
    const until = ends.length ? Math.min(...ends) : 0;
    if (until > now) this.audio.silence(until - now);
    else if (this.audio.isSilenced()) this.audio.endSilence();
  }

  renderSilence() {
    const now = pageClockMs();
    const on = [...this.silences.values()].filter((silence) => silence.endsAt > now);
    const note = byId("station-silence");
    if (!note) return;
    note.hidden = on.length === 0;
    this.root.dataset.wardSilenced = on.length ? "true" : "false";
    setSentence(byId("station-silence-text"), on.flatMap((silence, index) => {
      const left = Math.max(0, Math.ceil((silence.endsAt - now) / 1000));
      const why = silence.reason ? [" (", isolated(silence.reason), ")"] : [];  // a reason in Hebrew took the "118"
      return [`${index ? " " : ""}Alarm sound silenced on every screen of ward ${silence.ward} by `,
        isolated(String(silence.by ?? "someone")), ...why, `: ${left} s left. A new high alarm sounds at once.`];
    }));
  }

  connectionChanged(state) {
    this.labelSilence(state === "live");
    clearTimeout(this.lostTimer);
    if (state === "live") this.setProblem("connection", false);
    else this.lostTimer = setTimeout(() => this.setProblem("connection", true), CONNECTION_GRACE_MS);
  }

  /** The silence button says what it will do: the ward's shared silence only when it can ask the server; "Sound again
   * now", which only the server can do, waits for it. */
  labelSilence(live) {
    const end = byId("station-silence-end");
    if (end) end.disabled = !this.asksTheWard(live);
    const button = byId("station-audio-silence");
    if (!button?.dataset.wardLabel) return;
    button.textContent = this.asksTheWard(live) ? button.dataset.wardLabel : button.dataset.screenLabel;
  }

  /** Whether the silence button asks for the ward's silence (else it silences this screen): the label and the act. */
  asksTheWard(live) {
    return this.canSilence && live;
  }

  /** `key` is one of TECHNICAL's: the station's own fault, on or off. */
  setProblem(key, present) {
    if (present === this.problems.has(key)) return;
    if (present) this.problems.add(key);
    else this.problems.delete(key);
    this.render();
  }

  /** Connected, a ward feed asked for and its full summary not in for more than 10 s (`live.wardsUnanswered`: a
   * server that takes the socket and never answers, overloaded, its database away): the cards read Stale, and the
   * station says it cannot do its job, as when the connection is lost (review 37: it said nothing). Checked each
   * second (`update`). */
  watchWardAnswers() {
    this.setProblem("feedAwaited", this.live.wardsUnanswered);
  }

  /** The ward's pumps changed (or a second passed): every active alarm of each pump, listed, bannered, sounded. */
  update(pumps) {
    this.updated = true;
    this.watchWardAnswers();
    this.alarms = [...pumps]
      .flatMap((pump) => (pump.alarms ?? (pump.topAlarm ? [pump.topAlarm] : [])).map((alarm) => ({ ...alarm, pump })))
      .sort(byUrgency); // the banner and title name the first unanswered: an escalated one before a newer one
    this.render();
    this.noteShown();
    // the silences the page was rendered with, after the alarms they cover are known (a silence applied before them
    // would be ended by them as new), as when the feed's answer brings them
    for (const body of this.heldSilences.splice(0)) this.silenceChanged(body);
  }

  render() {
    if (!this.updated) return; // the server's render stands until the first update, which the page makes at once
    this.renderList();
    this.renderSilence();
    const top = this.alarms.find((alarm) => !alarm.acknowledged);
    const banner = byId("station-alarm-banner");
    banner.hidden = !top;
    banner.dataset.priority = top?.priority ?? "none";
    if (top) setText(banner, `${PRIORITY_LABEL[top.priority] ?? top.priority} alarm · ${describe(top)}`);
    const technical = byId("station-technical-alarm");
    technical.hidden = this.problems.size === 0;
    setText(technical, [...this.problems].map((key) => TECHNICAL[key]).join(" "));
    this.root.dataset.technical = this.problems.size ? "true" : "false";
    const lead = top ? `${top.priority.toUpperCase()}: ${where(top.pump)} · ` : this.problems.size ? "STATION ALARM · " : "";
    if (document.title !== lead + this.baseTitle) document.title = lead + this.baseTitle;
    this.sound();
  }

  renderList() {
    const keys = new Set(this.alarms.map(alarmKey));
    for (const key of this.items.keys()) if (!keys.has(key)) this.items.delete(key);
    placeRows(byId("station-alarm-list"), this.alarms.map((alarm) => this.item(alarm)));
    byId("station-alarms").hidden = this.alarms.length === 0;
  }

  /** The alarm's entry: made once, then its texts changed in place ("· for 12 s" changes every second). */
  item(alarm) {
    const key = alarmKey(alarm);
    let item = this.items.get(key);
    if (!item) {
      item = document.createElement("li");
      item.dataset.key = key;
      item.append(document.createElement("a"));
      this.items.set(key, item);
    }
    item.dataset.priority = alarm.priority;
    item.dataset.acknowledged = alarm.acknowledged ? "true" : "false";
    item.dataset.escalated = escalated(alarm) ? "true" : "false";
    const link = item.firstElementChild;
    const href = this.monitorUrl(alarm.pump.deviceId);
    if (link.getAttribute("href") !== href) link.href = href;
    setText(link, `${PRIORITY_LABEL[alarm.priority] ?? alarm.priority}: ${describe(alarm)}` +
      (alarm.acknowledged ? " (acknowledged)" : ""));
    return item;
  }

  /** Patient alarms by priority; a technical fault sounds the medium pattern (a new high alarm still wins).
   * An escalated alarm nobody acknowledged, of any priority, plays the high pattern faster (same pitch): the stronger
   * pattern (review 32: an escalated medium alarm went on playing the plain medium pattern). */
  sound() {
    const stronger = this.alarms.some((alarm) => escalated(alarm));
    this.root.dataset.escalated = stronger ? "true" : "false";
    const high = byId("station-audio-high");
    if (high) high.playbackRate = stronger ? ESCALATED_RATE : 1;
    const sounding = this.alarms.map((alarm) => ({
      ...alarm, state: "active", priority: escalated(alarm) ? "high" : alarm.priority,
    }));
    if (this.problems.size) sounding.push({ id: "station", priority: "medium", state: "active", acknowledged: false });
    this.audio.update(sounding);
  }
}

function where(pump) {
  return pump.bed ? `Bed ${pump.bed}` : pump.deviceId;
}

/** An alarm as the ward's silence names it seen (`silence:ward` `seen`), or null for one without an id or alert. */
function seenOf(alarm) {
  if (!Number.isInteger(alarm.id) || !Number.isInteger(alarm.alerts)) return null;
  return { id: alarm.id, alerts: alarm.alerts, tier: alarm.escalation?.level ?? 0 };
}

function escalated(alarm) {
  return Boolean(alarm.escalation && !alarm.acknowledged);
}

function describe(alarm) {
  const lasting = alarm.raisedAt ? ` · ${lastingFor(alarm.raisedAt)}` : "";
  const tier = escalated(alarm) ? ` · ESCALATED to tier ${alarm.escalation.level}` : "";
  return `${where(alarm.pump)} · ${alarm.message || humanType(alarm.type)}${lasting}${tier}`;
}

/** An alarm's key in the list: the pump's and the alarm's ids (the type for a summary without ids). */
function alarmKey(alarm) {
  return `${alarm.pump.deviceId}:${alarm.id ?? alarm.type}`;
}

export { TECHNICAL };

// A station signed out (session ended elsewhere, expired) goes to the sign-in page, which keeps the
// technical alarm going (static/js/signed_out.js): the flag travels in this tab's sessionStorage.
export const SIGNED_OUT_KEY = "pumpstream.stationSignedOut";

export function stationSignedOut() {
  sessionStorage.setItem(SIGNED_OUT_KEY, new Date().toISOString());
  window.location.reload();
}

/** A station that is signed in again is no longer signed out. */
export function stationSignedIn() {
  sessionStorage.removeItem(SIGNED_OUT_KEY);
}
