// Alarm sound for high and medium alarms. Silence lasts two minutes at most, and a new high alarm, a new alert
// of one (never a repeat), or an alarm's new escalation tier ends it at once (a permanent mute is unsafe). Browsers
// may refuse to play before the user has interacted with the page: then the page says so and offers a button, and any
// click or key press retries.
// The state is visible as `data-audio` on the root element: off, high, medium, silenced, blocked.

import { alertOf } from "./announce.js";

export const SILENCE_MS = 120_000;

/** What of a sounding alarm a silence may not hold back, as `id:alert:tier`: a high alarm's alert, and an escalated
 * alarm's tier whatever its priority (a new tier is news, as a new alert is); null for a medium or low one's alert. */
function newsOf(alarm) {
  const tier = alarm.escalation?.level ?? 0;
  return alarm.priority === "high" || tier > 0 ? `${alarm.id}:${alertOf(alarm)}:${tier}` : null;
}

export class AlarmAudio {
  /** `onSilence`: what the silence button does instead of silencing this screen (the station: the whole ward). */
  constructor({ root, high, medium, stateLabel, enableButton, silenceButton, silenceMs = SILENCE_MS, onSilence }) {
    Object.assign(this, { root, stateLabel, enableButton, silenceButton, silenceMs });
    this.players = { high, medium };
    this.wanted = "off";
    this.playing = null;
    this.blocked = false;
    this.silencedUntil = 0;
    this.silenceTimer = null;
    this.knownNews = new Set();
    // what must sound through a silence (`newsOf`): the high alarms' alerts and every alarm's escalation tiers sounding
    // when the sound was silenced, or since. While the silence lasts none of them is new, even after an update without
    // it (a stream the monitor stopped and resumed sends it again), nor is a repeat of one (the pump sending it again:
    // `count` + 1, the same alert); a new alert of one (a reminder, the flood alarm's news, a raise at a higher
    // priority: `alerts` + 1) is, and so is a new tier of an unanswered alarm of any priority (review 32: the server
    // breaks the ward's silence on an escalation, never a screen's own), and ends the silence
    this.silencedNews = new Set();
    enableButton?.addEventListener("click", () => this.retry());
    silenceButton?.addEventListener("click", () => (onSilence ? onSilence() : this.silence()));
    const retryOnGesture = () => this.blocked && this.retry();
    // on click, not pointerdown: the sound state line changes length, and a layout that moved between
    // pointerdown and pointerup would make a phone's first tap (Acknowledge, Resolve) miss its button
    document.addEventListener("click", retryOnGesture, true);
    document.addEventListener("keydown", retryOnGesture, true);
    window.pumpstreamAudio = this;
  }

  /** Recompute what should sound from the active alarms (`{id, priority, state, acknowledged, alerts, escalation}`). */
  update(alarms) {
    const sounding = alarms.filter((a) => a.state === "active" && !a.acknowledged);
    const newsKeys = sounding.map(newsOf).filter(Boolean);
    const news = newsKeys.some((key) => !this.knownNews.has(key) && !this.silencedNews.has(key));
    this.knownNews = new Set(newsKeys);
    if (news && this.isSilenced()) this.endSilence();
    if (this.isSilenced()) for (const key of newsKeys) this.silencedNews.add(key);
    if (sounding.some((a) => a.priority === "high")) this.wanted = "high";
    else this.wanted = sounding.some((a) => a.priority === "medium") ? "medium" : "off";
    this.apply();
  }

  isSilenced() {
    return Date.now() < this.silencedUntil;
  }

  silence(ms = this.silenceMs) {
    this.silencedUntil = Date.now() + ms;
    this.silencedNews = new Set([...this.silencedNews, ...this.knownNews]);
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.endSilence(), ms);
    this.apply();
  }

  endSilence() {
    this.silencedUntil = 0;
    this.silencedNews = new Set();
    clearTimeout(this.silenceTimer);
    this.apply();
  }

  retry() {
    this.blocked = false;
    this.playing = null;
    this.apply();
  }

  apply() {
    const target = this.wanted === "off" || this.isSilenced() ? null : this.wanted;
    if (target !== this.playing) {
      this.stopAll();
      this.playing = target;
      if (target) this.start(this.players[target]);
    }
    this.render();
  }

  start(player) {
    if (!player) return;
    player.currentTime = 0;
    const attempt = player.play();
    if (attempt?.catch) {
      attempt.then(
        () => this.render(),
        (error) => {
          if (error?.name === "NotAllowedError") {
            this.blocked = true;
            this.playing = null;
          }
          this.render();
        },
      );
    }
  }

  stopAll() {
    for (const player of Object.values(this.players)) player?.pause();
  }

  get state() {
    if (this.wanted === "off") return "off";
    if (this.isSilenced()) return "silenced";
    if (this.blocked) return "blocked";
    return this.wanted;
  }

  render() {
    const state = this.state;
    if (this.root) this.root.dataset.audio = state;
    if (this.enableButton) this.enableButton.hidden = state !== "blocked";
    if (this.silenceButton) this.silenceButton.hidden = !(state === "high" || state === "medium");
    if (this.stateLabel) {
      const left = Math.ceil((this.silencedUntil - Date.now()) / 1000);
      this.stateLabel.textContent = {
        off: "",
        high: "Sounding: high-priority alarm",
        medium: "Sounding: medium-priority alarm",
        silenced: `Sound silenced for up to ${left} s; a new high alarm sounds at once`,
        blocked: "The browser blocked the alarm sound: press the button to allow it",
      }[state];
    }
  }
}
