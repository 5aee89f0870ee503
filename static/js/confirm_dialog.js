// The monitor's confirmation before a command. Enter confirms Pause and Resume; it never confirms Stop
// (only the red button does) and never cancels silently; Escape or Back cancels.

const COMMAND_VERB = { pause: "Pause", resume: "Resume", stop: "Stop" };
const $ = (root, selector) => root.querySelector(selector);

export class CommandConfirmation {
  /** `describe()` names the infusion ("the infusion of … for … in bed …"); `onConfirm(command, reason)`. */
  constructor(dialog, { describe, onConfirm }) {
    this.dialog = dialog;
    this.describe = describe;
    $(dialog, "#confirm-back").addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("keydown", (event) => this.onEnter(event));
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "confirm") onConfirm(dialog.dataset.command, $(dialog, "#confirm-reason").value);
    });
  }

  open(command) {
    const { dialog } = this;
    const verb = COMMAND_VERB[command];
    dialog.dataset.command = command;
    $(dialog, "#confirm-title").textContent = `${verb} the infusion?`;
    $(dialog, "#confirm-text").textContent =
      `${verb} ${this.describe()}. The pump is sent the command; its progress is shown on this page.`;
    const ok = $(dialog, "#confirm-ok");
    ok.textContent = `${verb} infusion`;
    ok.classList.toggle("danger", command === "stop");
    $(dialog, "#confirm-reason").value = "";
    $(dialog, "#confirm-hint").textContent = "";
    dialog.returnValue = "";
    dialog.showModal();
  }

  onEnter(event) {
    if (event.key !== "Enter" || event.isComposing || event.target.tagName !== "INPUT") return;
    event.preventDefault();
    if (this.dialog.dataset.command === "stop") {
      $(this.dialog, "#confirm-hint").textContent =
        "Enter does not stop an infusion: press the red Stop infusion button.";
    } else {
      this.dialog.close("confirm");
    }
  }
}
