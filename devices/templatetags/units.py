"""Rates and volumes as the pages show them, by the rules of static/js/format.js `significant` and `exact`."""

import math
from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()


@register.filter
def significant(value: float | int | None) -> str:
    """`value` to three significant figures, one to three decimals: 0.14 -> "0.14", 60 -> "60.0", 1200 -> "1,200.0"."""
    if not _shown(value):
        return "—"
    magnitude = 0 if value == 0 else math.floor(math.log10(abs(value)))
    return _decimal_text(value, min(3, max(1, 2 - magnitude)))


@register.filter
def exact(value: float | int | None) -> str:
    """An order's figure as typed, one to three decimals: 0.125 -> "0.125", 12.34 -> "12.34", 250 -> "250.0"; the
    monitor's "Ordered" line, so a card names an order as the monitor does (12.34 mL/h, never "12.3")."""
    return _decimal_text(value, 3) if _shown(value) else "—"


def _shown(value: float | int | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _decimal_text(value: float | int, digits: int) -> str:
    """`value` to at most `digits` decimals (one at least), grouped, rounded as the browser's `toLocaleString` rounds:
    its shortest decimal form, a half away from zero (0.1235 -> "0.124", where Python's format gives "0.123")."""
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    whole, _, decimals = f"{rounded:,.{digits}f}".partition(".")
    return f"{whole}.{decimals.rstrip('0') or '0'}"
