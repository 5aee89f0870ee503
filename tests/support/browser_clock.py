"""A browser clock that can be stepped, as an NTP correction or someone setting the PC's time steps it.

An init script wraps `Date.now` with an offset the test changes; `performance.now()` and `performance.timeOrigin` run
on untouched, as they do when the operating system's wall clock is stepped."""

STEPPABLE_CLOCK = """
(() => {
  const real = Date.now.bind(Date);
  let skewMs = 0;
  Date.now = () => real() + skewMs;
  window.__stepClock = (ms) => { skewMs += ms; return skewMs; };
})();
"""


def step_clock(page, ms: int) -> None:
    """Step the page's wall clock (`Date.now`) by `ms` (negative: back)."""
    page.evaluate("(ms) => window.__stepClock(ms)", ms)
