// A press lands only on a control that stood still: a pointer's click on a button or link that appeared or moved
// less than STEADY_MS ago is not carried out, and the page says so ("press again if you meant it").
//
// Live pages move under a finger: a high alarm puts the station's banner and "Silence the ward 2 min" above the cards
// (the cards 185 px down, the button where the alarming pump's bed label was; another pump's card where hers was), a
// newer alarm's Acknowledge takes the place of the one she reached for, the degraded banner puts "Silence 2 min" where
// Acknowledge was, Cancel start… comes where Start infusion… was (reviews 42, 43). A person cannot see and mean a
// control that came under her finger in the last fraction of a second, so such a press is hers for what was there
// before. Browsers guard their own permission prompts the same way. The keyboard is not guarded (a key presses the
// focused control, which she sees), nor a script's click.
//
// Every control's box is measured after each change of the page (a MutationObserver, one measure per frame), once a
// second, and at the press itself: a box not measured before (a new control, one shown) or not where it was counts as
// moved now. Boxes are read in document coordinates, so her own scrolling moves nothing. The controls of the page as
// the server sent it stand still from its start.

import { pageClockMs } from "./page_clock.js";
import { STEADY_MS } from "./steady_time.js"; // the shortest time in which a person sees a control and means to press it

const CONTROLS = "button, a[href]"; // a link too: a pump's card pushed down by another's alarm opened the wrong pump
const NOTICE_MS = 6000;

const boxes = new WeakMap(); // control -> {key, since}: its box and since when it has stood there (page clock)
let measureQueued = false;

function boxKey(control) {
  const rect = control.getBoundingClientRect();
  if (!rect.width && !rect.height) return "hidden";
  return [rect.left + window.scrollX, rect.top + window.scrollY, rect.width, rect.height].map(Math.round).join(",");
}

/** Measure `control`; a new box (or a control not seen before) stands from now, marked `data-settling` meanwhile. */
function measure(control, now, { baseline = false } = {}) {
  const key = boxKey(control);
  const known = boxes.get(control);
  if (known?.key === key) return known;
  const box = { key, since: baseline ? -Infinity : now };
  boxes.set(control, box);
  if (!baseline && key !== "hidden") settling(control, box);
  return box;
}

/** `data-settling` while the control has not stood still long enough (the tests' presses wait for it to go). */
function settling(control, box) {
  control.dataset.settling = "true";
  setTimeout(() => {
    if (boxes.get(control) === box) delete control.dataset.settling;
  }, STEADY_MS);
}

function measureAll() {
  measureQueued = false;
  const now = pageClockMs();
  for (const control of document.querySelectorAll(CONTROLS)) measure(control, now);
}

function measureSoon() {
  if (measureQueued) return;
  measureQueued = true;
  requestAnimationFrame(measureAll);
}

/** The press's control, if the press is a pointer's on a control that has not stood still for STEADY_MS. */
function unsteady(event) {
  if (!event.isTrusted || event.detail === 0) return null; // a key or a script: not a finger's aim
  const control = event.target instanceof Element ? event.target.closest(CONTROLS) : null;
  if (!control) return null;
  const now = pageClockMs();
  const box = measure(control, now);
  return now - box.since < STEADY_MS ? control : null;
}

function refuse(event, control) {
  event.preventDefault();
  event.stopImmediatePropagation();
  control.dataset.refused = String(Number(control.dataset.refused ?? 0) + 1);
  const label = (control.getAttribute("aria-label") || control.textContent || "it").trim().replace(/\s+/g, " ");
  say(control, `The page changed as you pressed: “${label.slice(0, 80)}” was not pressed. Look again, and ` +
    "press it again if you meant it.");
}

/** The note: in the open dialog she pressed in (a note of the page would sit behind its backdrop, unheard), else the
 * page's. Each is an empty live region from the start, so the first refusal is announced; it takes no press (a tap on
 * it reaches what is under it) and moves nothing (fixed). */
function say(control, text) {
  const notice = noticeIn(control.closest("dialog[open]") ?? document.body);
  for (const other of document.querySelectorAll(".steady-notice")) if (other !== notice) other.hidden = true;
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => {
    notice.hidden = true;
  }, NOTICE_MS);
}

function noticeIn(host) {
  let notice = [...host.children].find((child) => child.classList.contains("steady-notice"));
  if (!notice) {
    notice = Object.assign(document.createElement("p"), { className: "steady-notice", hidden: true });
    notice.setAttribute("role", "status");
    if (host === document.body) notice.id = "steady-notice";
    host.append(notice);
  }
  return notice;
}

function start() {
  for (const host of [document.body, ...document.querySelectorAll("dialog")]) noticeIn(host);
  const now = pageClockMs();
  for (const control of document.querySelectorAll(CONTROLS)) measure(control, now, { baseline: true });
  const everyChange = { subtree: true, childList: true, attributes: true, characterData: true };
  new MutationObserver(measureSoon).observe(document.body, everyChange);
  window.addEventListener("resize", measureSoon);
  // what moves a control without a change of the page's elements (a font or an image loaded): seen within a second,
  // so a press long after it is not refused as a move "now"
  setInterval(measureSoon, 1000);
  window.addEventListener("click", (event) => {
    const control = unsteady(event);
    if (control) refuse(event, control);
  }, { capture: true });
}

start();
