"""Rates and volumes as the pages show them, by the rule of static/js/format.js `significant`."""

import math

from django import template

register = template.Library()


@register.filter
def significant(value: float | int | None) -> str:
    """`value` to three significant figures, one to three decimals: 0.14 -> "0.14", 60 -> "60.0", 1200 -> "1,200.0"."""
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return "—"
    magnitude = 0 if value == 0 else math.floor(math.log10(abs(value)))
    digits = min(3, max(1, 2 - magnitude))
    whole, _, decimals = f"{value:,.{digits}f}".partition(".")
    return f"{whole}.{decimals.rstrip('0') or '0'}"
