// The monitor's alarm list: each active alarm with Acknowledge and Resolve… (a coded reason and a note), sounded
// through the monitor's AlarmAudio. Reads and renders the Monitor's state (monitor.js); holds no alarm state of its
// own, only the rows shown (kept by alarm id and updated in place, keyed_rows.js) and the acts sent and not yet seen.
//
// An act's outcome is shown by the alarm's live `device:alarm`, never by the POST's reply: a reply read after newer
// live events (the alarm alerted again, higher, between the server's acknowledgement and the reply's arrival) would
// put the older state back over them. Until the live event comes the button says "Acknowledging…" (disabled).

import { byUrgency } from "./alarm_order.js";
import { PRIORITY_LABEL, clock, humanType, isMonitoringHealthy, lastingFor } from "./format.js";
import { postJson } from "./http.js";
import { placeRows, setText } from "./keyed_rows.js";

const $ = (root, selector) => root.querySelector(selector);
const NO_ALARMS = "No active alarms.";

export class AlarmList {
  constructor(monitor) {
    this.monitor = monitor;
    this.rows = new Map(); // alarm id -> the row shown for it
    this.acknowledging = new Map(); // alarm id -> the alert (`alerts`) an Acknowledge was sent for, not yet seen
    this.resolving = new Map(); // alarm id -> the alert a Resolve was sent for, not yet seen
    // The empty list's item as templates/devices/_monitor_panel.html renders it before the page is live: its words
    // when none can be vouched for are its `data-reserve`, which its box holds whichever it says (pumpstream.css), so
    // the controls below do not jump as the page goes live or stops being live (review 42, finding 5).
    this.none = $(monitor.root, "#alarm-list .none");
    this.notVouched = this.none.dataset.reserve;
    this.none.hidden = false; // hidden beside the alarms the server rendered: placed only when there are none
    // The server renders the active alarms as this list does, before the page is live: their rows and buttons are
    // kept, not made anew (a new button in the place of the one under her finger is refused for a moment).
    for (const item of monitor.root.querySelectorAll("#alarm-list .alarm[data-alarm-id]")) this.adopt(item);
  }

  /** A row the server rendered (templates/devices/_monitor_alarm.html), its buttons wired as `newRow`'s. */
  adopt(item) {
    const alarmId = Number(item.dataset.alarmId);
    const [title, text, ack] = item.children;
    if (text.firstChild?.nodeType !== Node.TEXT_NODE) text.prepend(document.createTextNode(""));
    const row = {
      item, title, said: text.firstChild, lasting: $(text, ".lasting"), escalated: $(text, ".escalated"), ack,
      ackShown: item.dataset.acknowledged === "true" ? "acknowledged" : "none", resolve: $(item, ".resolve"),
    };
    const button = $(ack, "button");
    if (button) {
      const alerts = Number(item.dataset.alerts);
      button.addEventListener("click", () => this.acknowledge(alarmId, alerts));
      row.ackShown = `button:${alerts}`;
    }
    row.resolve?.addEventListener("click", () => this.openResolve(this.monitor.alarms.get(alarmId)));
    this.rows.set(alarmId, row);
  }

  /** The empty list's words: "No active alarms." only while monitoring is healthy and the page receives the pump;
   * else none are known, which is no sign that none are raised (an alarm may be waiting at the broker, the server not
   * answering, this page's socket lost while the bridge's polls are still answered: review 36, or this pump's events
   * no longer sent here). */
  renderNone() {
    const vouched = isMonitoringHealthy() && this.monitor.isReceiving();
    setText(this.none.firstElementChild, vouched ? NO_ALARMS : this.notVouched);
    this.none.classList.toggle("unknown", !vouched);
  }

  render() {
    const { alarms } = this.monitor;
    const shown = [...alarms.values()].sort(byUrgency);
    this.forgetSeenActs();
    for (const id of this.rows.keys()) if (!alarms.has(id)) this.rows.delete(id);
    const rows = shown.map((alarm) => this.row(alarm));
    this.renderNone();
    placeRows($(this.monitor.root, "#alarm-list"), rows.length ? rows : [this.none]);
    // a refusal about an alarm is over once the alarm is (cleared, resolved) or someone acknowledged it
    this.monitor.alarmNotice.clearIf(({ alarmId }) => !alarms.get(alarmId) || Boolean(alarms.get(alarmId).acknowledged));
    // A pump no longer received: its alarms stay listed (greyed, as last known) but no longer sound here.
    // A Stop or Pause past its deadline with nothing to end it sounds the medium pattern (monitor_controls.js).
    this.monitor.audio.update(this.monitor.stoppedBecause ? [] : [...shown, ...this.monitor.controls.overdueSounds()]);
  }

  /** An act is seen once its alarm is acknowledged, gone, or alerted again (then the new alert is shown). */
  forgetSeenActs() {
    const { alarms } = this.monitor;
    for (const [id, alerts] of this.acknowledging) {
      const alarm = alarms.get(id);
      if (!alarm || alarm.acknowledged || alarm.alerts !== alerts) this.acknowledging.delete(id);
    }
    for (const [id, alerts] of this.resolving) if (alarms.get(id)?.alerts !== alerts) this.resolving.delete(id);
  }

  /** The alarm's row, made once and then updated in place. */
  row(alarm) {
    let row = this.rows.get(alarm.id);
    if (!row) {
      row = this.newRow(alarm.id);
      this.rows.set(alarm.id, row);
    }
    const { item } = row;
    item.dataset.priority = alarm.priority;
    item.dataset.acknowledged = alarm.acknowledged ? "true" : "false";
    setText(row.title, `${PRIORITY_LABEL[alarm.priority] ?? alarm.priority}: ${humanType(alarm.type)}`);
    const count = alarm.count > 1 ? ` · ×${alarm.count}` : "";
    const said = `${alarm.message || ""} (raised ${clock(alarm.raisedAt)}${count}) `;
    if (row.said.data !== said) row.said.data = said;
    row.lasting.dataset.lastingSince = alarm.raisedAt;
    setText(row.lasting, lastingFor(alarm.raisedAt));
    const escalated = alarm.escalation && !alarm.acknowledged;
    row.escalated.hidden = !escalated;
    setText(row.escalated, escalated ? ` · ESCALATED to tier ${alarm.escalation.level}: acknowledge to stop it ` : "");
    this.renderAcknowledge(row, alarm);
    this.renderResolve(row, alarm);
    return item;
  }

  newRow(alarmId) {
    const item = document.createElement("li");
    item.className = "alarm";
    item.dataset.alarmId = alarmId;
    const title = document.createElement("strong");
    const text = document.createElement("span");
    const said = document.createTextNode("");
    const lasting = document.createElement("span");
    lasting.className = "lasting";
    const escalated = document.createElement("strong");
    escalated.className = "escalated";
    text.append(said, lasting, escalated);
    const ack = document.createElement("span");
    ack.className = "ack";
    item.append(title, text, ack);
    const row = { item, title, said, lasting, escalated, ack, ackShown: null, resolve: null };
    if (this.monitor.page.canResolve) {
      row.resolve = document.createElement("button");
      row.resolve.type = "button";
      row.resolve.className = "secondary resolve";
      row.resolve.addEventListener("click", () => this.openResolve(this.monitor.alarms.get(alarmId)));
      item.append(row.resolve);
    }
    return row;
  }

  /** Who acknowledged it, or its Acknowledge button: a new button only for a new alert (never the one pressed for
   * an older alert), the same one kept while the pump reports progress. */
  renderAcknowledge(row, alarm) {
    const canAcknowledge = this.monitor.page.canAcknowledge && !this.monitor.stoppedBecause;
    const shown = alarm.acknowledged ? "acknowledged" : canAcknowledge ? `button:${alarm.alerts}` : "none";
    if (row.ackShown !== shown) {
      row.ackShown = shown;
      row.ack.replaceChildren();
      if (shown.startsWith("button:")) {
        const button = document.createElement("button");
        button.type = "button";
        const { alerts } = alarm; // the alert shown: a newer one is refused by the server (409 alarm_changed)
        button.addEventListener("click", () => this.acknowledge(alarm.id, alerts));
        row.ack.append(button);
      }
    }
    if (alarm.acknowledged) {
      setText(row.ack, `Acknowledged by ${alarm.acknowledged.by ?? "someone"} at ${clock(alarm.acknowledged.at)}`);
    }
    const button = row.ack.querySelector("button");
    if (!button) return;
    const sent = this.acknowledging.has(alarm.id) && this.acknowledging.get(alarm.id) === alarm.alerts;
    button.disabled = sent;
    setText(button, sent ? "Acknowledging…" : "Acknowledge");
  }

  renderResolve(row, alarm) {
    if (!row.resolve) return;
    row.resolve.hidden = Boolean(this.monitor.stoppedBecause);
    const sent = this.resolving.has(alarm.id) && this.resolving.get(alarm.id) === alarm.alerts;
    row.resolve.disabled = sent;
    setText(row.resolve, sent ? "Resolving…" : "Resolve…");
  }

  async acknowledge(alarmId, alerts) {
    this.monitor.alarmNotice.clear(); // her next act replaces what was said of the last
    this.acknowledging.set(alarmId, alerts);
    this.render();
    const { ok, body } = await postJson(`/api/alarms/${alarmId}/acknowledge/`, { alerts });
    if (ok) return; // its live `device:alarm` shows it (or the newer alert that overtook it)
    if (this.acknowledging.get(alarmId) === alerts) this.acknowledging.delete(alarmId);
    this.monitor.alarmNotice.show(body.message ?? "Could not acknowledge the alarm", { alarmId });
    this.render();
  }

  // ---- resolving a stuck alarm (coded reason and a note; audited and seen by every watcher) ------------

  wireResolve() {
    const dialog = $(this.monitor.root, "#resolve-dialog");
    if (!dialog) return;
    const select = $(dialog, "#resolve-reason");
    const placeholder = new Option("Choose a reason…", "");
    select.replaceChildren(placeholder, ...(this.monitor.page.resolveReasons ?? []).map((r) => new Option(r.label, r.value)));
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "resolve") return;
      this.resolve(Number(dialog.dataset.alarmId), Number(dialog.dataset.alerts), select.value, $(dialog, "#resolve-note").value);
    });
  }

  openResolve(alarm) {
    if (!alarm) return;
    const dialog = $(this.monitor.root, "#resolve-dialog");
    dialog.dataset.alarmId = alarm.id;
    dialog.dataset.alerts = alarm.alerts; // the alert shown: a newer one (say at a higher priority) is refused (409)
    $(dialog, "#resolve-text").textContent = `${humanType(alarm.type)} on ${this.monitor.deviceId}: clear it by hand, with a reason.`;
    $(dialog, "#resolve-reason").value = "";
    $(dialog, "#resolve-note").value = "";
    $(dialog, "#resolve-error").textContent = "";
    dialog.returnValue = "";
    dialog.showModal();
  }

  async resolve(alarmId, alerts, reason, note) {
    this.monitor.alarmNotice.clear();
    this.resolving.set(alarmId, alerts);
    this.render();
    const { ok, body } = await postJson(`/api/alarms/${alarmId}/resolve/`, { reason, note, alerts });
    if (ok) return; // its live `device:alarm` takes it off the list
    if (this.resolving.get(alarmId) === alerts) this.resolving.delete(alarmId);
    this.monitor.alarmNotice.show(body.message ?? "Could not resolve the alarm", { alarmId });
    this.render();
  }
}
