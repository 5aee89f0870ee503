"""The settings' reader of the environment: django-environ's, strict where it guessed.

django-environ read `SESSION_IDLE_TIMEOUT_S=` (blank, as a copied `.env.example` line leaves it) as a crash whose
traceback named no variable, `HEARTBEAT_TIMEOUT_S=nan` as a number no pump's silence ever exceeds (every pump
"Online" for ever), `HEARTBEAT_TIMEOUT_S=1e999` as 1999 and `10min` as 10 (its float reader drops what is not a
digit), and `DJANGO_SECURE_SSL_REDIRECT=ture` as false, in silence. Here a blank number or switch is
unset (its default, as a blank `DJANGO_DEBUG=` always was), and a value that does not read as one stops the process
naming the variable and what it holds.
"""

import math
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

SWITCH_WORDS = frozenset({*environ.Env.BOOLEAN_TRUE_STRINGS, "false", "off", "n", "no", "0"})
KINDS = {int: "a whole number", float: "a finite number", bool: "true or false"}


class SettingsEnv(environ.Env):
    """`environ.Env` whose numbers and switches are read strictly (the module's docstring)."""

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, parse_default: bool = False):
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if not any(cast is kind for kind in KINDS) or raw is None:  # (a list's cast is a list: unhashable)
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        if not raw.strip():
            if default is self.NOTSET:
                raise ImproperlyConfigured(f"{var} is blank: set it to {KINDS[cast]}")
            return default
        try:
            value = float(raw) if cast is float else super().get_value(var, cast=cast, default=default)
        except (TypeError, ValueError):
            value = None
        if not _read_as(cast, raw, value):
            raise ImproperlyConfigured(f"{var}={raw!r} does not read as {KINDS[cast]}: correct it, or remove it for "
                                       "its default (see .env.example)")  # fmt: skip
        return value


def _read_as(cast: Any, raw: str, value: Any) -> bool:
    """Whether `raw` read as the kind asked for, `value` being what was made of it (None: nothing)."""
    if value is None:
        return False
    if cast is float:
        return math.isfinite(value)
    if cast is bool:
        return raw.strip().lower() in SWITCH_WORDS
    return True
