// Volume over the session (Chart.js, served from static/vendor): the ordered line from 0 at the session's
// start to the planned volume at the planned time, and the delivered volume as the pump reports it. The
// x axis is time since the start ("0 min", "15 min", "1 h 30"), the y axis runs to the planned volume.

const REDRAW_MS = 1000;
const ORDERED_COLOUR = "#555";
const DELIVERED_COLOUR = "#0b57d0";

export class VolumeChart {
  constructor(canvas) {
    this.points = []; // [{at (ms), y (mL)}] as reported, in order
    this.plan = null; // {startMs, plannedVolumeMl, plannedTimeMin}
    this.pending = false;
    this.box = canvas?.parentElement;
    // eslint-disable-next-line no-undef
    if (!canvas || typeof Chart === "undefined") return;
    // eslint-disable-next-line no-undef
    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          { label: "Ordered", data: [], borderColor: ORDERED_COLOUR, borderDash: [6, 4], pointRadius: 0, tension: 0 },
          { label: "Delivered", data: [], borderColor: DELIVERED_COLOUR, borderWidth: 3, pointRadius: 0, tension: 0 },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: {
            type: "linear", min: 0, title: { display: true, text: "Time since start" },
            ticks: { callback: (minutes) => elapsedLabel(minutes), maxTicksLimit: 7 },
          },
          y: { min: 0, title: { display: true, text: "mL" } },
        },
        plugins: { legend: { display: true, position: "bottom" } },
      },
    });
  }

  /** The session the chart is about: its start (confirmation, else request) and its order. */
  setPlan(session) {
    const order = session?.order;
    const startMs = Date.parse(session?.confirmedAt ?? session?.createdAt ?? "");
    const plan = order && !Number.isNaN(startMs)
      ? { startMs, plannedVolumeMl: order.plannedVolumeMl, plannedTimeMin: order.plannedTimeMin }
      : null;
    if (JSON.stringify(plan) === JSON.stringify(this.plan)) return;
    this.plan = plan;
    this.redrawSoon();
  }

  reset() {
    this.points.length = 0;
    this.redrawSoon();
  }

  /** Stored samples go before anything that arrived live meanwhile. */
  prepend(pairs) {
    const stored = pairs.map(toPoint).filter(Boolean);
    const after = stored.length ? stored[stored.length - 1].at : -Infinity;
    const live = this.points.filter((point) => point.at > after);
    this.points.length = 0;
    this.points.push(...stored, ...live);
    this.redrawSoon();
  }

  add(at, volume) {
    const point = toPoint([at, volume]);
    if (!point) return;
    const last = this.points[this.points.length - 1];
    if (last && point.at <= last.at) return;
    this.points.push(point);
    this.redrawSoon();
  }

  /** What is drawn: both lines in minutes since the start, beginning at 0 mL. */
  series() {
    if (!this.plan) return { ordered: [], delivered: [] };
    const { startMs, plannedVolumeMl, plannedTimeMin } = this.plan;
    const minutes = (at) => Math.max(0, (at - startMs) / 60000);
    const delivered = [{ x: 0, y: 0 }, ...this.points.filter((p) => p.at >= startMs).map((p) => ({ x: minutes(p.at), y: p.y }))];
    const ordered = isFiniteNumber(plannedVolumeMl) && isFiniteNumber(plannedTimeMin)
      ? [{ x: 0, y: 0 }, { x: plannedTimeMin, y: plannedVolumeMl }]
      : [];
    return { ordered, delivered };
  }

  redrawSoon() {
    if (this.box) this.box.hidden = !this.plan; // no session, no chart (an empty one would read as "0 mL")
    if (!this.chart || this.pending) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.draw();
    }, REDRAW_MS);
  }

  draw() {
    const { ordered, delivered } = this.series();
    const [orderedSet, deliveredSet] = this.chart.data.datasets;
    orderedSet.data = ordered;
    deliveredSet.data = delivered;
    const lastX = delivered.length ? delivered[delivered.length - 1].x : 0;
    const lastY = Math.max(0, ...delivered.map((point) => point.y));
    this.chart.options.scales.x.max = niceMax(Math.max(this.plan?.plannedTimeMin ?? 0, lastX, 1));
    this.chart.options.scales.y.max = niceMax(Math.max(this.plan?.plannedVolumeMl ?? 0, lastY, 1));
    this.chart.update("none");
  }
}

function isFiniteNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function toPoint([at, volume]) {
  const ms = Date.parse(at ?? "");
  return Number.isNaN(ms) || !isFiniteNumber(volume) ? null : { at: ms, y: volume };
}

/** A round upper bound just above `value` (1, 2, 2.5 or 5 times a power of ten). */
function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((factor) => factor * power >= value);
  return step * power;
}

/** Minutes since the start as an axis label: "30 s", "15 min", "1 h 30". */
export function elapsedLabel(minutes) {
  if (minutes < 1 && minutes > 0) return `${Math.round(minutes * 60)} s`;
  const whole = Math.round(minutes);
  if (whole < 60) return `${whole} min`;
  return `${Math.floor(whole / 60)} h ${String(whole % 60).padStart(2, "0")}`;
}
