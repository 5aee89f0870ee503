// Alarm sound for high and medium alarms. Silence lasts two minutes at most, and a new high alarm, a new alert
// of one (never a repeat), or an alarm's new escalation tier ends it at once (a permanent mute is unsafe). Browsers
// may refuse to play before the user has interacted with the page: then the page says so and offers a button, and any
// click or key press retries.
// Both sounds are looped media, which browsers hand to their media controls (a keyboard's play/pause key, a headset
// button, Chrome's toolbar media button): a silence is the only pause the page makes, so a player paused by anything
// else while it should sound is played again at once, and the media session's pause and stop are ignored. What the
// page says sounds is read from the players themselves: one that should sound and is paused is said to be blocked,
// with the button to allow it (review 35: a paused sound was said to be sounding, and stayed paused for good).
// The silence is timed on the page clock (page_clock.js): the PC's clock stepped back never lengthens it.
// A press of the silence button silences only what she saw: while a high alarm's alert or an escalation that would end
// the silence has been sounding here for less than a person takes to see it (STEADY_MS), the press silences nothing
// and she is told why (`onSilencePressed`); pressed again once it was there long enough, it silences.
// The state is visible as `data-audio` on the root element: off, high, medium, silenced, blocked.

import { alertOf } from "./announce.js";
import { pageClockMs } from "./page_clock.js";
import { STEADY_MS } from "./steady_time.js";

export const SILENCE_MS = 120_000;
/** Why a press of silence silenced nothing: the server's words for the same refusal (`silences.UNSEEN_MESSAGE`). */
export const UNSEEN_MESSAGE = "A new alarm came as you pressed: look at it, then silence again";

/** Media session actions a media key, a headset button or the browser's media controls send: handled by the page, so
 * the browser does not pause or move an alarm sound itself; each only sounds what should sound (a silence is a
 * clinical act with its own button, never a stray key). */
const MEDIA_ACTIONS = ["play", "pause", "stop", "seekbackward", "seekforward", "seekto"];
/** A player the browser pauses again sooner than this after the page played it again is played again when this time
 * is up, not at once (and said to be blocked meanwhile): a browser that keeps pausing it is not fought in a loop. */
const REPLAY_AT_MOST_EVERY_MS = 1_000;

/** What of a sounding alarm a silence may not hold back, as `id:alert:tier`: a high alarm's alert, and an escalated
 * alarm's tier whatever its priority (a new tier is news, as a new alert is); null for a medium or low one's alert. */
function newsOf(alarm) {
  const tier = alarm.escalation?.level ?? 0;
  return alarm.priority === "high" || tier > 0 ? `${alarm.id}:${alertOf(alarm)}:${tier}` : null;
}

export class AlarmAudio {
  /** `onSilence`: what the silence button does instead of silencing this screen (the station: the whole ward);
   * `onSilencePressed(refusal)`: each press judged here (`silencePressed`): why it silenced nothing, said where she
   * looks, or null when it silenced (a refusal said before is over). */
  constructor({
    root, high, medium, stateLabel, enableButton, silenceButton, silenceMs = SILENCE_MS, onSilence, onSilencePressed,
  }) {
    Object.assign(this, { root, stateLabel, enableButton, silenceButton, silenceMs, onSilencePressed });
    this.players = { high, medium };
    this.wanted = "off";
    this.playing = null;
    this.blocked = false;
    this.silencedUntil = 0;
    this.silenceTimer = null;
    this.knownNews = new Map(); // what must sound through a silence (`newsOf`) sounding now -> since when (page clock)
    // what must sound through a silence (`newsOf`): the high alarms' alerts and every alarm's escalation tiers sounding
    // when the sound was silenced, or since. While the silence lasts none of them is new, even after an update without
    // it (a stream the monitor stopped and resumed sends it again), nor is a repeat of one (the pump sending it again:
    // `count` + 1, the same alert); a new alert of one (a reminder, the flood alarm's news, a raise at a higher
    // priority: `alerts` + 1) is, and so is a new tier of an unanswered alarm of any priority (review 32: the server
    // breaks the ward's silence on an escalation, never a screen's own), and ends the silence
    this.silencedNews = new Set();
    this.replayedAt = new Map(); // player -> when it was last played again after the browser paused it
    for (const player of Object.values(this.players)) this.watch(player);
    this.takeMediaKeys();
    enableButton?.addEventListener("click", () => this.retry());
    silenceButton?.addEventListener("click", () => (onSilence ? onSilence() : this.silencePressed()));
    const retryOnGesture = () => this.state === "blocked" && this.retry();
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
    const now = pageClockMs();
    this.knownNews = new Map(newsKeys.map((key) => [key, this.knownNews.get(key) ?? now]));
    if (news && this.isSilenced()) this.endSilence();
    if (this.isSilenced()) for (const key of newsKeys) this.silencedNews.add(key);
    if (sounding.some((a) => a.priority === "high")) this.wanted = "high";
    else this.wanted = sounding.some((a) => a.priority === "medium") ? "medium" : "off";
    this.apply();
  }

  isSilenced() {
    return pageClockMs() < this.silencedUntil;
  }

  /** A person's press of silence: this screen silenced, unless what would end the silence has sounded here for less
   * than STEADY_MS (she cannot have seen it): then nothing, and `onSilencePressed` says why. Whether it silenced. */
  silencePressed(ms = this.silenceMs) {
    const now = pageClockMs();
    const unseen = [...this.knownNews.values()].some((since) => now - since < STEADY_MS);
    if (!unseen) this.silence(ms);
    this.onSilencePressed?.(unseen ? UNSEEN_MESSAGE : null);
    return !unseen;
  }

  /** Silence this screen for `ms`, covering what sounds now (a ward's silence applied here, or a press judged). */
  silence(ms = this.silenceMs) {
    this.silencedUntil = pageClockMs() + ms;
    this.silencedNews = new Set([...this.silencedNews, ...this.knownNews.keys()]);
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

  /** Start what should sound, stop the rest; a player that should sound and is paused is started again (a new high
   * alarm or an escalation after the browser paused it: the same target, so no change of target would). */
  apply() {
    const target = this.wanted === "off" || this.isSilenced() ? null : this.wanted;
    if (target !== this.playing) {
      this.stopAll();
      this.playing = target;
    }
    const player = this.players[target];
    if (player?.paused) this.start(player);
    this.render();
  }

  start(player) {
    player.currentTime = 0;
    const attempt = player.play();
    if (attempt?.catch) {
      attempt.then(
        () => {
          this.blocked = false;
          this.render();
        },
        (error) => {
          if (error?.name === "NotAllowedError") this.blocked = true;
          this.render();
        },
      );
    }
  }

  /** Whether this player is the one that should sound now. */
  shouldSound(player) {
    return Boolean(this.playing) && this.players[this.playing] === player;
  }

  /** A pause the page did not make (a media key, a headset button, the browser's media controls) is undone at once;
   * a play it did not make (the media controls' play on a player silenced or not wanted) too. The events come after
   * the page's own pause and play, so each acts on the player's state and the page's target as they are then. */
  watch(player) {
    player?.addEventListener("pause", () => {
      if (!player.paused || !this.shouldSound(player)) return;
      const wait = (this.replayedAt.get(player) ?? -Infinity) + REPLAY_AT_MOST_EVERY_MS - performance.now();
      if (wait > 0) setTimeout(() => this.apply(), wait);
      else {
        this.replayedAt.set(player, performance.now());
        this.start(player);
      }
      this.render();
    });
    player?.addEventListener("play", () => {
      if (!player.paused && !this.shouldSound(player)) player.pause();
    });
  }

  /** The media session's actions (`MEDIA_ACTIONS`) sound what should sound, where the browser has a media session;
   * an action it does not know is skipped (`setActionHandler` throws a TypeError for it). */
  takeMediaKeys() {
    const session = globalThis.navigator?.mediaSession;
    if (!session?.setActionHandler) return;
    for (const action of MEDIA_ACTIONS) {
      try {
        session.setActionHandler(action, () => this.apply());
      } catch (error) {
        if (!(error instanceof TypeError)) throw error;
      }
    }
  }

  stopAll() {
    for (const player of Object.values(this.players)) player?.pause();
  }

  /** What the page says of its sound, read from the player that should sound: "high" or "medium" only while it plays
   * (or is starting), "blocked" while it is paused (the browser refused it, or paused it and refused it again). */
  get state() {
    if (this.wanted === "off") return "off";
    if (this.isSilenced()) return "silenced";
    if (this.blocked || this.players[this.wanted]?.paused !== false) return "blocked";
    return this.wanted;
  }

  render() {
    const state = this.state;
    if (this.root) this.root.dataset.audio = state;
    // the sound line keeps its box while any sound is wanted (templates/devices/_monitor_panel.html, _station.html)
    const line = this.stateLabel?.closest("[data-sounding]");
    if (line) line.dataset.sounding = String(state !== "off");
    if (this.enableButton) this.enableButton.hidden = state !== "blocked";
    if (this.silenceButton) this.silenceButton.hidden = !(state === "high" || state === "medium");
    if (this.stateLabel) {
      const left = Math.ceil((this.silencedUntil - pageClockMs()) / 1000);
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
