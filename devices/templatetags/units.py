"""Rates, volumes, durations and times as the pages show them, by the rules of static/js/format.js (`significant`,
`exact`, `fixed`, `duration`, `clock`, `span`)."""

import math
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def significant(value: float | int | None) -> str:
    """`value` to three significant figures, one to three decimals: 0.14 -> "0.14", 60 -> "60.0", 1200 -> "1,200.0"."""
    if not shown(value):
        return "—"
    magnitude = 0 if value == 0 else math.floor(math.log10(abs(value)))
    return _decimal_text(value, min(3, max(1, 2 - magnitude)))


@register.filter
def exact(value: float | int | None) -> str:
    """An order's figure as typed, one to three decimals: 0.125 -> "0.125", 12.34 -> "12.34", 250 -> "250.0"; the
    monitor's "Ordered" line, so a card names an order as the monitor does (12.34 mL/h, never "12.3")."""
    return _decimal_text(value, 3) if shown(value) else "—"


def shown(value: float | int | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _decimal_text(value: float | int, digits: int) -> str:
    """`value` to at most `digits` decimals (one at least), grouped, rounded as the browser's `toLocaleString` rounds:
    its shortest decimal form, a half away from zero (0.1235 -> "0.124", where Python's format gives "0.123")."""
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    whole, _, decimals = f"{rounded:,.{digits}f}".partition(".")
    return f"{whole}.{decimals.rstrip('0') or '0'}"


def with_unit(text: str, unit: str) -> str:
    """`text` and its unit, as format.js writes them ("60.0 mL/h"); "—" (nothing known) without one."""
    return text if text == "—" else f"{text} {unit}"


def decimals_for(value: float) -> int:
    """format.js `decimalsFor`: the decimals that give `value` three significant figures, from one to three."""
    magnitude = math.floor(math.log10(abs(value))) if shown(value) and value != 0 else 0
    return min(3, max(1, 2 - magnitude))


def rounded(value: float, digits: int) -> float:
    """`value` to `digits` decimals, a half away from zero, as `fixed` shows it."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def span(seconds: float) -> str:
    """format.js `span`: "14 s", "3 min", "2 h 05 min"."""
    whole = max(0, math.floor(seconds))
    if whole < 90:
        return f"{whole} s"
    if whole < 5400:
        return f"{whole // 60} min"
    minutes = whole // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fixed(value: float | None, digits: int, unit: str = "") -> str:
    """format.js `fixed`: `digits` decimals, grouped, halves away from zero as the browser's `toLocaleString`."""
    if not shown(value):
        return "—"
    text = f"{Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):,.{digits}f}"
    return f"{text} {unit}" if unit else text


def duration(minutes: float | None) -> str:
    """format.js `duration`: "45 min", "1 h 05 min", "< 1 min"."""
    if not shown(minutes):
        return "—"
    total = max(0, int(Decimal(repr(minutes)).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
    hours, rest = divmod(total, 60)
    if hours == 0:
        return "< 1 min" if 0 < minutes < 1 else f"{rest} min"
    return f"{hours} h {rest:02d} min"


def clock(iso: str | None) -> str:
    """format.js `clock`: HH:MM:SS in the server's zone; "—" for anything else."""
    if not isinstance(iso, str):
        return "—"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return "—"
    return timezone.localtime(moment).strftime("%H:%M:%S")
