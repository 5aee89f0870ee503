// What the monitor must keep saying after an act of the nurse failed (a Stop refused because another infusion is on
// the pump, an alarm that alerted again, the server not reached): a line of its own beside the buttons pressed,
// kept until she dismisses it, her next act there replaces it, or what it refers to is over.

import { clock, serverNowMs } from "./format.js";

export class Notice {
  /** `element`: a container holding `.notice-text` (the words, `role="alert"`) and a `.notice-dismiss` button. */
  constructor(element) {
    this.element = element;
    this.text = element?.querySelector(".notice-text") ?? null;
    this.subject = null;
    element?.querySelector(".notice-dismiss")?.addEventListener("click", () => this.clear());
  }

  /** Say `message`, with the time it came, about `subject` (e.g. `{alarmId}`: `clearIf` may end it). */
  show(message, subject = null) {
    if (!this.element || !this.text) return;
    this.subject = subject;
    this.text.textContent = `${clock(new Date(serverNowMs()).toISOString())}: ${message}`;
    this.element.hidden = false;
  }

  clear() {
    if (!this.element || !this.text) return;
    this.subject = null;
    this.text.textContent = "";
    this.element.hidden = true;
  }

  /** Clear it if it is about a subject and `isOver(subject)` says what it refers to is over. */
  clearIf(isOver) {
    if (this.subject && isOver(this.subject)) this.clear();
  }
}
