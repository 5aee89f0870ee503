// Delivered volume over time (Chart.js, served from static/vendor): stored samples, extended live.

const REDRAW_MS = 1000;

export class VolumeChart {
  constructor(canvas) {
    this.points = [];
    this.pending = false;
    this.box = canvas?.parentElement;
    // eslint-disable-next-line no-undef
    if (!canvas || typeof Chart === "undefined") return;
    // eslint-disable-next-line no-undef
    this.chart = new Chart(canvas, {
      type: "line",
      data: { datasets: [{ label: "Delivered (mL)", data: this.points, borderColor: "#1f6feb", pointRadius: 0, tension: 0 }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: { type: "linear", ticks: { callback: (value, index, ticks) => timeLabel(value, ticks), maxTicksLimit: 6 } },
          y: { beginAtZero: true, title: { display: true, text: "mL" } },
        },
        plugins: { legend: { display: false } },
      },
    });
  }

  reset() {
    this.points.length = 0;
    this.redrawSoon();
  }

  /** Stored samples go before anything that arrived live meanwhile. */
  prepend(pairs) {
    const stored = pairs.map(toPoint).filter(Boolean);
    const after = stored.length ? stored[stored.length - 1].x : -Infinity;
    const live = this.points.filter((point) => point.x > after);
    this.points.length = 0;
    this.points.push(...stored, ...live);
    this.redrawSoon();
  }

  add(at, volume) {
    const point = toPoint([at, volume]);
    if (!point) return;
    const last = this.points[this.points.length - 1];
    if (last && point.x <= last.x) return;
    this.points.push(point);
    this.redrawSoon();
  }

  redrawSoon() {
    if (this.box) this.box.hidden = this.points.length === 0; // an empty chart would read as "0 mL delivered"
    if (!this.chart || this.pending) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.chart.update("none");
    }, REDRAW_MS);
  }
}

function toPoint([at, volume]) {
  const x = Date.parse(at ?? "");
  return Number.isNaN(x) || typeof volume !== "number" ? null : { x, y: volume };
}

const SECONDS_BELOW_MS = 15 * 60 * 1000; // short spans show seconds too
const formatters = {};
function timeLabel(value, ticks) {
  const span = ticks.length > 1 ? ticks[ticks.length - 1].value - ticks[0].value : 0;
  const withSeconds = span < SECONDS_BELOW_MS;
  formatters[withSeconds] ??= new Intl.DateTimeFormat("en-GB", {
    timeZone: JSON.parse(document.getElementById("page-data")?.textContent ?? "{}").timeZone ?? "UTC",
    hour: "2-digit",
    minute: "2-digit",
    ...(withSeconds ? { second: "2-digit" } : {}),
    hour12: false,
  });
  return formatters[withSeconds].format(new Date(value));
}

