// The start-infusion wizard: patient (or a recorded skip), infusion (the drug, then any two of rate, volume
// and time give the third, by the server's own rule: order_derivation.js; bolus within the total), review of the order
// as the server will place it, figure for figure, with "start" typed to confirm. Enter advances a
// step but never starts an infusion; an error clears as soon as its field is put right. The rate and bolus limits
// are the server's own (`orderLimits`, rendered from protocol/limits.py), in its words; the server checks them
// again and names the wrong field; its answer opens the waiting modal. Each order asked carries one idempotency key:
// a request whose reply was lost is asked after by that key (the order may have been placed all the same), and sent
// again it is answered with the order it placed, never a second one (review 22, finding 2). An edit makes another
// order, but never forgets one whose outcome is unknown: the keys of requests whose reply was lost are kept, asked
// after on a 409 `session_active` and when a pending order shows on the live page, and an order one of them placed
// opens the waiting window, naming the figures it sent (review 25, finding 4).

import { duration, exact, exactNumber, isNumber, mlMinToMlH, orderFigures } from "./format.js";
import { getJson, idempotencyKey, postJson } from "./http.js";
import { derivedOrder, figuresAgree } from "./order_derivation.js";
import { isolated, isolatedInText } from "./keyed_rows.js";
import { ACTIVE_SESSION_STATUSES } from "./protocol.js";
import { showsNothing } from "./visible_text.js";

const RVT = ["rate_ml_h", "volume_ml", "time_min"];
const PATIENT_TERMS = ["Patient", "Bed", "Allergies"]; // the review's rows a skip leaves out of the order
const NOT_RECORDED = "Not recorded (patient details skipped)";
const STEP_OF_FIELD = {
  patient_name: 1, patient_age: 1, patient_weight_kg: 1, patient_bed: 1, patient_allergies: 1, drug: 2,
  rate_ml_h: 2, volume_ml: 2, time_min: 2, bolus_volume_ml: 2, bolus_enabled: 2, confirm: 3,
};

export class Wizard {
  constructor(root, { onStarted, limits }) {
    this.root = root;
    this.form = root.querySelector("#wizard-form");
    this.onStarted = onStarted;
    this.limits = limits; // maxRateMlMin, maxRateText, maxBolusShare, pumpMaxBolusMl, tolerance, decimals
    this.maxVolumeMl = Number(root.dataset.maxVolumeMl);
    this.edited = []; // rate/volume/time fields in the order the clinician typed them
    this.startKey = null; // the idempotency key of the order asked (until a field changes: then it is another order)
    // The requests whose reply was lost, key -> the figures each sent: each may have placed its order all the same.
    // Kept across edits until the server answers for them (an edited order is another order, not an unplaced one).
    this.unanswered = new Map();
    this.field = (name) => this.form.elements.namedItem(name);
    this.touched = false; // the clinician typed or clicked in the wizard (since this page loaded)
    this.wire();
    this.show(1);
  }

  /** The form as the server serves it, if a browser put figures back into it after Back or a reload before the
   * clinician touched it (review 33, finding 4): a time this page had computed was then sent as typed beside a
   * corrected rate, and a Bolus tick came back beside a disabled volume field. The form's autocomplete is off, which
   * keeps Chromium's and Firefox's restoring out; Chromium restores after the page's scripts, before `pageshow`. */
  startAfreshIfRestored() {
    if (this.touched) return; // never what she typed
    this.form.reset(); // a hidden input's value is its default: the patient's skip is undone by hand
    this.field("patient_skipped").value = "";
    this.field("bolus_volume_ml").disabled = !this.field("bolus_enabled").checked;
  }

  wire() {
    for (const kind of ["input", "click"]) this.root.addEventListener(kind, () => (this.touched = true), true);
    window.addEventListener("pageshow", () => this.startAfreshIfRestored());
    for (const name of RVT) this.field(name).addEventListener("input", () => this.rvtEdited(name));
    this.field("bolus_enabled").addEventListener("change", () => {
      this.field("bolus_volume_ml").disabled = !this.field("bolus_enabled").checked;
    });
    this.root.querySelector("#skip-patient").addEventListener("click", () => this.toggleSkip());
    for (const button of this.root.querySelectorAll("[data-next]")) {
      button.addEventListener("click", () => this.go(Number(button.dataset.next)));
    }
    const confirm = this.field("confirm");
    confirm.addEventListener("input", () => {
      this.root.querySelector("#start-submit").disabled = confirm.value.trim().toLowerCase() !== confirm.dataset.word;
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.form.addEventListener("keydown", (event) => this.onEnter(event));
    // on input only: a re-check on blur ("change") would move the buttons under the pointer mid-click
    this.form.addEventListener("input", () => this.revalidateShownErrors());
    // another order, another request (typing the confirmation word again changes nothing in the order)
    this.form.addEventListener("input", (event) => event.target.name !== "confirm" && this.forgetRequest());
  }

  /** Whether a request of this page may have placed an order unseen (its reply was lost, and no answer since). */
  get unsure() {
    return this.unanswered.size > 0;
  }

  /** Enter advances steps 1 and 2; on the review it only says how to start (a click, never a key). */
  onEnter(event) {
    if (event.key !== "Enter" || event.isComposing || event.target.tagName !== "INPUT") return;
    event.preventDefault();
    if (this.step < 3) this.go(this.step + 1);
    else {
      // a hint, not an error: the typed word may well be right
      this.root.querySelector('[data-error-for="confirm"]').textContent =
        "Enter does not start an infusion: press the Start infusion button.";
    }
  }

  /** Errors on screen are re-checked as the clinician types, so a fixed field never keeps its error. */
  revalidateShownErrors() {
    this.root.querySelector("#wizard-error").hidden = true;
    const errors = this.step === 1 ? this.patientErrors() : this.step === 2 ? this.infusionErrors() : {};
    for (const slot of this.root.querySelectorAll("[data-error-for]")) {
      const name = slot.dataset.errorFor;
      if (slot.textContent && STEP_OF_FIELD[name] === this.step) this.setError(name, errors[name] ?? "");
    }
  }

  // ---- steps ---------------------------------------------------------------------------------------

  go(step) {
    if (step > this.step && !this.validate(this.step)) return;
    if (step === 3) this.renderReview();
    this.show(step);
  }

  show(step) {
    this.step = step;
    for (const fieldset of this.form.querySelectorAll("fieldset[data-step]")) {
      fieldset.hidden = Number(fieldset.dataset.step) !== step;
    }
    for (const marker of this.root.querySelectorAll("[data-step-marker]")) {
      if (Number(marker.dataset.stepMarker) === step) marker.setAttribute("aria-current", "step");
      else marker.removeAttribute("aria-current");
    }
    const first = this.form.querySelector(`fieldset[data-step="${step}"] input:not([type=hidden]):not([disabled])`);
    first?.focus();
  }

  /** Back to the review (Retry after a rejection or a timeout): the clinician confirms again. */
  retry() {
    this.forgetRequest();
    this.confirmAgain();
    this.root.hidden = false;
    this.go(3);
  }

  /** Shown again after the waiting window (an order placed, then ended): a new order is confirmed anew. */
  confirmAgain() {
    this.field("confirm").value = "";
    this.root.querySelector("#start-submit").disabled = true;
  }

  toggleSkip() {
    this.forgetRequest(); // the patient is part of the order
    const skipped = this.field("patient_skipped").value !== "1";
    this.field("patient_skipped").value = skipped ? "1" : "";
    this.root.querySelector("#skip-warning").hidden = !skipped;
    this.root.querySelector("#skip-patient").textContent = skipped ? "Enter patient details instead" : "Skip patient details";
    if (skipped) {
      this.setError("patient_name", "");
      this.go(2);
    }
  }

  // ---- rate, volume, time --------------------------------------------------------------------------

  /** The two figures typed last give the third, filled in as the order will carry it (the review's figure). */
  rvtEdited(name) {
    this.field(name).dataset.computed = "false";
    this.edited = this.edited.filter((other) => other !== name);
    if (this.field(name).value !== "") this.edited.push(name);
    const sources = this.edited.slice(-2);
    if (sources.length < 2) return;
    const target = RVT.find((other) => !sources.includes(other));
    const input = this.field(target);
    input.dataset.computed = "true";
    const value = this.derivedFigure(target);
    input.value = Number.isFinite(value) && value > 0 ? exactNumber(value) : "";
    this.edited = this.edited.filter((other) => other !== target);
  }

  /** The order the server will place from what the form sends (the figures typed; a computed one is sent empty), by
   * its own rule: what the review shows and the waiting window then names. Null without two figures. */
  order() {
    const typed = (name) => (this.field(name).dataset.computed === "true" ? null : this.numberOf(name));
    const figures = { rateMlH: typed("rate_ml_h"), volumeMl: typed("volume_ml"), timeMin: typed("time_min") };
    return derivedOrder(figures, this.limits.decimals);
  }

  /** A rate, volume or time of the order, in the field's unit (mL/h, mL, min). */
  derivedFigure(name) {
    const order = this.order();
    if (order === null) return null;
    if (name === "rate_ml_h") return mlMinToMlH(order.flowRateMlMin);
    return name === "volume_ml" ? order.plannedVolumeMl : order.plannedTimeMin;
  }

  numberOf(name) {
    const raw = this.field(name).value;
    return raw === "" ? null : Number(raw);
  }

  // ---- validation (the same rules as the server's) --------------------------------------------------

  validate(step) {
    const errors = step === 1 ? this.patientErrors() : step === 2 ? this.infusionErrors() : {};
    for (const [name, message] of Object.entries(errors)) this.setError(name, message);
    const stepFields = Object.keys(STEP_OF_FIELD).filter((name) => STEP_OF_FIELD[name] === step);
    for (const name of stepFields) if (!(name in errors)) this.setError(name, "");
    const first = Object.keys(errors)[0];
    if (first) this.field(first)?.focus();
    return !first;
  }

  patientErrors() {
    const name = this.field("patient_name").value;
    if (this.field("patient_skipped").value === "1" || !showsNothing(name)) return {};
    if (name.trim()) {
      return { patient_name: "The patient's name typed shows no visible character: enter it, or choose Skip." };
    }
    return { patient_name: "Enter the patient's name, or choose Skip." };
  }

  infusionErrors() {
    const errors = {};
    const drug = this.field("drug").value;
    if (!drug.trim()) errors.drug = "Enter the drug being infused (as on the bag or syringe label).";
    else if (showsNothing(drug)) {
      errors.drug =
        "Enter the drug being infused (as on the bag or syringe label): what was typed shows no visible character.";
    }
    // the figures typed, as the request sends them (a computed one is sent empty: the server derives it)
    const given = RVT.filter((name) => this.field(name).dataset.computed !== "true" && this.numberOf(name) > 0);
    if (given.length < 2) {
      for (const name of RVT) if (!given.includes(name)) errors[name] = "Enter any two of rate, volume and time.";
      return errors;
    }
    const order = this.order(); // the figures the server checks: the order as it will be placed
    if (order === null) {
      errors.rate_ml_h = "The rate is too small for this pump.";
      return errors;
    }
    if (!figuresAgree(order, this.limits)) {
      errors.time_min = figuresDisagree(order); // three typed (none computed) that are no order, as the server says
      return errors;
    }
    if (this.rateOverLimit(order.flowRateMlMin)) {
      errors.rate_ml_h = `The rate may be at most ${this.limits.maxRateText} mL/h.`;
    }
    if (order.plannedVolumeMl > this.maxVolumeMl) errors.volume_ml = `This pump holds at most ${this.maxVolumeMl} mL.`;
    if (this.field("bolus_enabled").checked) {
      const bolus = this.numberOf("bolus_volume_ml");
      if (!(bolus > 0)) errors.bolus_volume_ml = "Enter the bolus volume, or turn the bolus off.";
      else {
        const message = this.bolusOverLimit(bolus, order.plannedVolumeMl);
        if (message) errors.bolus_volume_ml = message;
      }
    }
    return errors;
  }

  /** `order_limits_check`'s rate rule: the rate in mL/min, rounded as the server stores it, against its limit. */
  rateOverLimit(rateMlMin) {
    return rateMlMin > this.limits.maxRateMlMin + this.limits.tolerance;
  }

  /** `order_limits_check`'s bolus rule (half the volume, and the pump's maximum), in the server's words. */
  bolusOverLimit(bolus, volume) {
    const { maxBolusShare, pumpMaxBolusMl, tolerance } = this.limits;
    const half = volume * maxBolusShare;
    const limit = pumpMaxBolusMl === null ? half : Math.min(half, pumpMaxBolusMl);
    if (!(bolus > limit + tolerance)) return "";
    const why = pumpMaxBolusMl === null ? "half the volume" : "half the volume, and this pump's maximum";
    return `The bolus may be at most ${Number(limit.toPrecision(6))} mL (${why}).`;
  }

  setError(name, message) {
    const slot = this.root.querySelector(`[data-error-for="${name}"]`);
    if (slot) slot.textContent = message;
    const input = this.field(name);
    if (input?.setAttribute) {
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  renderReview() {
    const value = (name) => (showsNothing(this.field(name).value) ? "" : this.field(name).value.trim());
    const skipped = this.field("patient_skipped").value === "1";
    const order = this.orderInForm();
    const perMinute = asSent(order.flowRateMlMin, this.limits.decimals.rateMlMin);
    // Skipped, the order records no patient detail (forms.py `order`): a bed or allergies typed before the skip are
    // said to be left out, never shown as if recorded (review 46: "Allergies Penicillin" under "Patient: Skipped").
    const patientDetail = (name) => {
      if (!skipped) return value(name) || "—";
      const typed = value(name);
      return typed ? [`${NOT_RECORDED}: “`, isolated(typed), "” will not be kept with this order"] : NOT_RECORDED;
    };
    const rows = [
      ["Patient", skipped ? "Skipped: recorded without patient details" : [isolated(value("patient_name")),
        `${value("patient_age") ? `, ${value("patient_age")} y` : ""}${value("patient_weight_kg") ? `, ${value("patient_weight_kg")} kg` : ""}`]],
      ["Bed", patientDetail("patient_bed")],
      ["Drug", value("drug") || "—"],
      ["Allergies", patientDetail("patient_allergies")],
      // the order as it will be sent, its figures as the waiting window and the monitor show them (`orderFigures`)
      ["Rate", `${exact(mlMinToMlH(order.flowRateMlMin), "mL/h")} (${perMinute} mL/min)`],
      ["Volume", exact(order.plannedVolumeMl, "mL")],
      ["Time", `${exact(order.plannedTimeMin, "min")} (${duration(order.plannedTimeMin)})`],
      ["Bolus", order.bolus.enabled ? exact(order.bolus.volumeMl, "mL") : "Off"],
    ];
    const review = this.root.querySelector("#review");
    review.replaceChildren(
      ...rows.flatMap(([term, text]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.replaceChildren(...[text].flat());  // a name isolated: "<name>, 36 y" kept its age after it
        if (skipped && PATIENT_TERMS.includes(term)) dd.className = "warn-text";
        return [dt, dd];
      }),
    );
  }

  // ---- submit ----------------------------------------------------------------------------------------

  /** The order the form holds now, in the wire's shape: as the server will place it from what its request sends. */
  orderInForm() {
    const bolus = this.field("bolus_enabled").checked;
    const { flowRateMlMin = null, plannedVolumeMl = null, plannedTimeMin = null } = this.order() ?? {};
    return {
      flowRateMlMin, plannedVolumeMl, plannedTimeMin,
      bolus: { enabled: bolus, volumeMl: bolus ? this.numberOf("bolus_volume_ml") : null },
    };
  }

  /** The order in the form in one line, its drug (isolated: one in Arabic took the rate after it into its run) and
   * figures: what an earlier request is told apart by, named in the messages after a lost reply. */
  orderText() {
    return `${isolatedInText(this.field("drug").value.trim())}, ${orderFigures(this.orderInForm())}`;
  }

  /** Send only what the clinician typed (the server derives the third value by the same rule). */
  formData() {
    const data = new FormData(this.form);
    for (const name of RVT) if (this.field(name).dataset.computed === "true") data.set(name, "");
    if (!this.field("bolus_enabled").checked) data.delete("bolus_volume_ml");
    return data;
  }

  async submit() {
    const button = this.root.querySelector("#start-submit");
    button.disabled = true;
    const error = this.root.querySelector("#wizard-error");
    error.hidden = true;
    this.startKey ??= idempotencyKey(); // pressed again for the same order: the same key, never a second order
    const key = this.startKey;
    const figures = this.orderText();
    const data = this.formData();
    data.set("idempotencyKey", key);
    const { ok, status, body } = await postJson(this.root.dataset.startUrl, data);
    if (ok) {
      this.started(body.session);
      return;
    }
    const message = await this.whyNotStarted(key, figures, status, body);
    if (message === null) return; // an order of hers was placed: the waiting window follows it (opened here, or live)
    button.disabled = false;
    if (body.field && STEP_OF_FIELD[body.field]) {
      this.setError(body.field, body.message);
      this.show(STEP_OF_FIELD[body.field]);
      this.field(body.field)?.focus();
    }
    error.textContent = message;
    error.hidden = false;
  }

  /** What the wizard says when its request placed no order it knows of, or null when an order of hers was found
   * placed (the waiting window shows it). The server answered: this request placed nothing, and a 409
   * `session_active` may be an earlier request's order; no answer: this request may have placed it. */
  async whyNotStarted(key, figures, status, body) {
    if (status === 0) this.unanswered.set(key, figures);
    else this.unanswered.delete(key);
    const earlierMayBeIt = body.code === "session_active" && this.unsure;
    if (status !== 0 && !earlierMayBeIt) return body.message ?? "The infusion could not be started.";
    const asked = await this.checkPlaced();
    if (asked.placed || this.root.hidden) return null;
    if (status === 0) return asked.known ? NOT_PLACED : MAYBE_PLACED;
    return asked.known ? body.message : maybeAnEarlierOrder([...this.unanswered.values()]);
  }

  /** The order is placed: the waiting window follows it from here. `earlier`: it is an earlier request's order
   * (before an edit), whose figures are not the form's: the window says so. */
  started(session, earlier = null) {
    this.forgetRequest();
    this.unanswered.clear(); // an order is placed now: none of them holds the pump any more (one order at a time)
    this.onStarted(session, earlier);
  }

  /** A field changed (another order), or a new start begins: the next request is a new one. The requests whose
   * reply was lost stay asked after (`unanswered`): another order does not unplace theirs. */
  forgetRequest() {
    this.startKey = null;
  }

  /** After a request whose reply was lost, on a 409 `session_active`, and when an order appears on the pump meanwhile
   * (start_page.js): ask each unanswered request, newest first, whether it placed its order. The form's own request
   * found placed, or an earlier one's order found still active, opens the waiting window on it; an earlier order
   * found over since is forgotten (nothing of it waits). `{placed, known}`: `known` false when a question could not
   * be asked either. */
  async checkPlaced() {
    let known = true;
    for (const [key, figures] of [...this.unanswered].reverse()) {
      if (this.root.hidden) break; // the waiting window is open already (opened by another check, or live)
      const { ok, status, body } = await getJson(this.placedUrl(key));
      known &&= ok || status === 404;
      if (!ok || !body.session || !this.unanswered.has(key) || this.root.hidden) continue;
      if (key === this.startKey) {
        this.started(body.session);
        return { placed: true, known: true };
      }
      if (ACTIVE_SESSION_STATUSES.has(body.session.status)) {
        const inForm = this.orderText();
        this.started(body.session, { inForm: inForm === figures ? null : inForm });
        return { placed: true, known: true };
      }
      this.unanswered.delete(key);
    }
    return { placed: false, known };
  }

  placedUrl(key) {
    return `/api/devices/${encodeURIComponent(this.root.dataset.deviceId)}/starts/${encodeURIComponent(key)}/`;
  }
}

/** A rate in mL/min to the decimals the wire carries: "0.001724", "2.0" (never "0.0017", another rate). */
function asSent(rateMlMin, decimals) {
  if (!isNumber(rateMlMin)) return "—";
  return rateMlMin.toLocaleString("en-GB", { minimumFractionDigits: 1, maximumFractionDigits: decimals });
}

/** Three figures that are no order, in the server's words (forms.py `figures_disagree_message`). */
function figuresDisagree({ flowRateMlMin, plannedVolumeMl, plannedTimeMin }) {
  const product = exactNumber(flowRateMlMin * plannedTimeMin);
  return `Rate × time must equal the volume: ${exactNumber(mlMinToMlH(flowRateMlMin))} mL/h for ` +
    `${exactNumber(plannedTimeMin)} min is ${product} mL, not ${exactNumber(plannedVolumeMl)} mL. Clear one of the ` +
    "three to recompute it.";
}

/** A 409 `session_active` while earlier requests' outcome could not be learnt: the pump's order may be one of them. */
function maybeAnEarlierOrder(figures) {
  return `This pump already has an active infusion: it may be your earlier order (${figures.join(" or ")}), whose ` +
    "reply was lost. Check the pump's screen, and press Start infusion again once connected: it shows that order " +
    "if it is yours, with Cancel.";
}

const NOT_PLACED = "The server could not be reached, and no order of yours waits on this pump. Check the connection, " +
  "then press Start infusion again: it never places a second order.";
const MAYBE_PLACED = "The server could not be reached: the order may have been placed. Check the pump's screen, and " +
  "press Start infusion again once connected: it shows that order if it was placed, and never places a second one.";
