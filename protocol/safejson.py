"""The one JSON decoder for untrusted bytes: bounded size, depth and number length, no surprises.

Python's `json.loads` alone is not safe on hostile input: an integer of more than 4,300 digits raises a
plain `ValueError`, deep nesting a `RecursionError`, `1e999` becomes `inf`, a lone `\\ud800` escape
becomes a string no database encodes, and duplicate keys silently keep the last value (another parser
may keep the first). `json_decode` turns every such input into one `JsonRefused` with a reason, and
never raises anything else. No Django here: the bridge and any socket path can use it.
"""

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

# The closing quote is optional: an unterminated string then matches once, to the end (the document is refused by
# the parser anyway), instead of every `"` in it starting a scan to the end (quadratic: 0.5 s for 16 KiB of `\"`).
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
BRACKET = re.compile(r"[\[\]{}]")
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class JsonLimits:
    """What a document may be: bytes in all, nesting of arrays and objects, characters in one number."""

    max_bytes: int = 16 * 1024
    max_depth: int = 16
    max_number_chars: int = 64


class JsonRefused(ValueError):
    """A document refused; `reason` is the dead-letter reason (bad_utf8, bad_json, too_deep, bad_number...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def json_decode(raw: bytes | str, *, limits: JsonLimits = JsonLimits()) -> Any:
    """Decode untrusted JSON; raises only `JsonRefused` (size, UTF-8, syntax, depth, numbers, keys, text)."""
    if len(raw) > limits.max_bytes:
        raise JsonRefused("too_large", f"{len(raw)} bytes > {limits.max_bytes}")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused("bad_utf8", str(exc)[:200]) from exc
    else:
        text = raw
    _check_depth(text, limits.max_depth)
    try:
        document = json.loads(
            text,
            parse_int=lambda digits: _integer(digits, limits.max_number_chars),
            parse_float=lambda digits: _float(digits, limits.max_number_chars),
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except JsonRefused:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise JsonRefused("bad_json", str(exc)[:200]) from exc
    if SURROGATE_ESCAPE.search(text) or "\\u0000" in text:  # a NUL can come only from its escape (raw: bad_json)
        _check_text(document)
    return document


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth`, before the recursive parser sees it (brackets in strings ignored)."""
    if text.count("[") + text.count("{") <= max_depth:
        return  # the usual case: too few brackets to nest too deep, no scan needed
    depth = 0
    for bracket in BRACKET.findall(STRING_LITERAL.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise JsonRefused("too_deep", f"nesting deeper than {max_depth}")


def _integer(digits: str, max_chars: int) -> int:
    if len(digits) > max_chars:
        raise JsonRefused("bad_number", f"an integer of {len(digits)} characters")
    return int(digits)


def _float(digits: str, max_chars: int) -> float:
    if len(digits) > max_chars:
        raise JsonRefused("bad_number", f"a number of {len(digits)} characters")
    value = float(digits)
    if not math.isfinite(value):
        raise JsonRefused("bad_number", f"{digits[:40]} overflows")
    return value


def _constant(name: str) -> None:
    raise JsonRefused("bad_json", f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        repeated = sorted(key for key, times in Counter(key for key, _ in pairs).items() if times > 1)
        raise JsonRefused("duplicate_key", ", ".join(repeated)[:200])
    return document


def _check_text(value: Any) -> None:
    """Refuse a lone UTF-16 surrogate (from a `\\ud800` escape) or a NUL (`\\u0000`) in any key or string: no
    database stores the first; PostgreSQL stores no NUL in text or jsonb (SQLite would, so the refusal is here)."""
    if isinstance(value, str):
        if LONE_SURROGATE.search(value):
            raise JsonRefused("bad_utf8", "a lone surrogate escape")
        if "\x00" in value:
            raise JsonRefused("bad_utf8", "a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)
