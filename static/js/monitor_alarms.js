// The monitor's alarm list: each active alarm with Acknowledge and Resolve… (a coded reason and a note), sounded
// through the monitor's AlarmAudio. Reads and renders the Monitor's state (monitor.js); holds none of its own.

import { EVENTS } from "./protocol.js";
import { PRIORITY_LABEL, clock, humanType, lastingFor } from "./format.js";
import { postJson } from "./http.js";

const $ = (root, selector) => root.querySelector(selector);

export class AlarmList {
  constructor(monitor) {
    this.monitor = monitor;
  }

  render() {
    const list = $(this.monitor.root, "#alarm-list");
    const alarms = [...this.monitor.alarms.values()].sort(
      (a, b) => rank(b.priority) - rank(a.priority) || String(b.raisedAt).localeCompare(String(a.raisedAt)),
    );
    list.replaceChildren(...(alarms.length ? alarms.map((alarm) => this.item(alarm)) : [noAlarms()]));
    // A pump no longer received: its alarms stay listed (greyed, as last known) but no longer sound here.
    this.monitor.audio.update(this.monitor.stoppedBecause ? [] : alarms);
  }

  item(alarm) {
    const item = document.createElement("li");
    item.className = "alarm";
    item.dataset.priority = alarm.priority;
    item.dataset.alarmId = alarm.id;
    item.dataset.acknowledged = alarm.acknowledged ? "true" : "false";
    const title = document.createElement("strong");
    title.textContent = `${PRIORITY_LABEL[alarm.priority] ?? alarm.priority}: ${humanType(alarm.type)}`;
    const text = document.createElement("span");
    const count = alarm.count > 1 ? ` · ×${alarm.count}` : "";
    text.textContent = `${alarm.message || ""} (raised ${clock(alarm.raisedAt)}${count}) `;
    const lasting = document.createElement("span");
    lasting.className = "lasting";
    lasting.dataset.lastingSince = alarm.raisedAt;
    lasting.textContent = lastingFor(alarm.raisedAt);
    text.append(lasting);
    if (alarm.escalation && !alarm.acknowledged) {
      const escalated = document.createElement("strong");
      escalated.className = "escalated";
      escalated.textContent = ` · ESCALATED to tier ${alarm.escalation.level}: acknowledge to stop it `;
      text.append(escalated);
    }
    const ack = document.createElement("span");
    ack.className = "ack";
    if (alarm.acknowledged) {
      ack.textContent = `Acknowledged by ${alarm.acknowledged.by ?? "someone"} at ${clock(alarm.acknowledged.at)}`;
    } else if (this.monitor.page.canAcknowledge && !this.monitor.stoppedBecause) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => this.acknowledge(alarm, button));
      ack.append(button);
    }
    item.append(title, text, ack);
    if (this.monitor.page.canResolve && !this.monitor.stoppedBecause) {
      const resolve = document.createElement("button");
      resolve.type = "button";
      resolve.className = "secondary resolve";
      resolve.textContent = "Resolve…";
      resolve.addEventListener("click", () => this.openResolve(alarm));
      item.append(resolve);
    }
    return item;
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
      this.resolve(dialog.dataset.alarmId, Number(dialog.dataset.alerts), select.value, $(dialog, "#resolve-note").value);
    });
  }

  openResolve(alarm) {
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
    const { ok, body } = await postJson(`/api/alarms/${alarmId}/resolve/`, { reason, note, alerts });
    if (ok) this.monitor.apply(EVENTS.deviceAlarm, { deviceId: this.monitor.deviceId, alarm: body.alarm });
    else this.monitor.flash(body.message ?? "Could not resolve the alarm");
  }

  async acknowledge(alarm, button) {
    button.disabled = true;
    // The alert shown: if the alarm alerted again since (say at a higher priority), the server refuses (409).
    const { ok, body } = await postJson(`/api/alarms/${alarm.id}/acknowledge/`, { alerts: alarm.alerts });
    if (ok) this.monitor.apply(EVENTS.deviceAlarm, { deviceId: this.monitor.deviceId, alarm: body.alarm });
    else {
      button.disabled = false;
      this.monitor.flash(body.message ?? "Could not acknowledge the alarm");
    }
  }
}

function rank(priority) {
  return { high: 3, medium: 2, low: 1 }[priority] ?? 0;
}

function noAlarms() {
  const item = document.createElement("li");
  item.className = "muted none";
  item.textContent = "No active alarms.";
  return item;
}
