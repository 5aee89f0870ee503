// Lists updated in place: each row is kept by its key and its texts changed where they stand, and the rows are
// moved only when their order changes, so a focused button or link (keyboard, switch access, a screen reader) and
// a press half-way through keep their element while the page updates every second.

/** Make `list`'s children exactly `rows`, in order, touching the list only if they differ; the focus stays put. */
export function placeRows(list, rows) {
  const children = list.children;
  if (children.length === rows.length && rows.every((row, index) => children[index] === row)) return;
  const focused = document.activeElement;
  list.replaceChildren(...rows);
  if (focused?.isConnected && focused !== document.activeElement) focused.focus({ preventScroll: true });
}

/** Set `element`'s text only when it differs (an unchanged text is never rewritten). */
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** A person's or a pump's text inside a sentence of the page's own, isolated in a `<bdi>`: a drug or a name in Arabic
 * or Hebrew otherwise takes the figures after it into its right-to-left run, "Order: هيبارين, 120.0 mL/h" shown as
 * "Order: 120.0 ,هيبارين mL/h" (review 39, seen in Chromium). The sentence's text stays as it was: no mark is added. */
export function isolated(text) {
  const bdi = document.createElement("bdi");
  bdi.textContent = text;
  return bdi;
}

/** `text` between FSI and PDI, where a sentence is a string of its own (a message): the same isolation as `isolated`,
 * two invisible marks added by the page, never sent nor stored. */
export function isolatedInText(text) {
  return `\u2068${text}\u2069`;
}

/** Set `element` to a sentence of strings and `isolated` texts, only when its text differs (as `setText`). */
export function setSentence(element, parts) {
  const text = parts.map((part) => (typeof part === "string" ? part : part.textContent)).join("");
  if (element.textContent !== text) element.replaceChildren(...parts);
}
