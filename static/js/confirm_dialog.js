// The monitor's confirmation before a command. Enter confirms Pause and Resume; it never confirms Stop
// (only the red button does) and never cancels silently; Escape or Back cancels.

import { idempotencyKey } from "./http.js";

const COMMAND_VERB = {
  pause: "Pause", resume: "Resume", stop: "Stop", "end-record": "End the record of", cancel: "Cancel the start of",
};
const CONFIRM_LABEL = { "end-record": "End record", cancel: "Cancel start" };
const NO_ENTER = new Set(["stop", "end-record"]); // only the button itself confirms these
const $ = (root, selector) => root.querySelector(selector);

export class CommandConfirmation {
  /**
   * `describe(command)` names the infusion ("the infusion of … for … in bed …"); `explain(command)` adds a
   * warning (a stale or offline pump); `onConfirm(command, reason, key, infusionId)`, with one idempotency key per
   * opening, so a double click or a retry of the same intent is the same command, and the infusion the dialog named
   * when it opened (`open(command, infusionId)`; null: the pump's own, without an order): the server refuses the
   * command if another infusion is on the pump by then.
   */
  constructor(dialog, { describe, onConfirm, explain = () => "" }) {
    this.dialog = dialog;
    this.describe = describe;
    this.explain = explain;
    $(dialog, "#confirm-back").addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("keydown", (event) => this.onEnter(event));
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "confirm") return;
      onConfirm(dialog.dataset.command, $(dialog, "#confirm-reason").value, dialog.dataset.key, this.infusionId);
    });
  }

  open(command, infusionId) {
    const { dialog } = this;
    const verb = COMMAND_VERB[command];
    this.infusionId = infusionId ?? null;
    dialog.dataset.command = command;
    dialog.dataset.key = idempotencyKey();
    $(dialog, "#confirm-title").textContent = `${verb} the infusion?`;
    $(dialog, "#confirm-text").textContent = this.text(command, verb);
    const ok = $(dialog, "#confirm-ok");
    ok.textContent = CONFIRM_LABEL[command] ?? `${verb} infusion`;
    ok.classList.toggle("danger", command === "stop");
    $(dialog, "#confirm-reason").value = "";
    $(dialog, "#confirm-hint").textContent = "";
    dialog.returnValue = "";
    dialog.showModal();
  }

  text(command, verb) {
    if (command === "end-record") {
      return `End the server's record of ${this.describe(command)}, because the pump is not running it (it ` +
        "restarted, was swapped, or its end was lost). Nothing is sent to the pump. Give the reason below.";
    }
    if (command === "cancel") {
      return `Cancel the start of ${this.describe(command)}: the pump has not confirmed it. The order is withdrawn ` +
        "and the pump told to clear its confirm screen (not if it reports infusing, now or before that is sent: that " +
        "infusion keeps running; use Stop if it must stop).";
    }
    return `${verb} ${this.describe(command)}. The pump is sent the command; its progress is shown on this page.` +
      this.explain(command);
  }

  onEnter(event) {
    if (event.key !== "Enter" || event.isComposing || event.target.tagName !== "INPUT") return;
    event.preventDefault();
    if (NO_ENTER.has(this.dialog.dataset.command)) {
      $(this.dialog, "#confirm-hint").textContent = this.dialog.dataset.command === "stop"
        ? "Enter does not stop an infusion: press the red Stop infusion button."
        : "Enter does not end a record: press the End record button.";
    } else {
      this.dialog.close("confirm");
    }
  }
}
