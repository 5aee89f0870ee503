"""The one safe JSON decoder: every hostile form refused with its reason, never another exception."""

import json

import pytest

from protocol.safejson import STRING_LITERAL, JsonLimits, JsonRefused, json_decode

HUGE_INTEGER = b'{"status": "online", "x": ' + b"9" * 4301 + b"}"
# More brackets than the depth bound (so the string scan runs), then one unterminated string of escaped quotes,
# 16 KiB in all: the scan was quadratic on it (review 15: 485 ms per payload, in the bridge's batch transaction).
ESCAPED_QUOTES = b"[" * 17 + b'"' + b'\\"' * 8174


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (HUGE_INTEGER, "bad_number"),  # Python's json raises a plain ValueError past 4,300 digits
        (b'{"x": ' + b"1" * 65 + b"}", "bad_number"),
        (b'{"x": 1e999}', "bad_number"),  # overflows to inf
        (b'{"x": -1e400}', "bad_number"),
        (b'{"x": 0.' + b"1" * 70 + b"}", "bad_number"),
        (b'{"x": NaN}', "bad_json"),
        (b'{"x": Infinity}', "bad_json"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),  # RecursionError in json.loads without the depth bound
        (b"{" * 3000, "too_deep"),
        (b'{"a": ' * 17 + b"1" + b"}" * 17, "too_deep"),
        (b"\xff\xfe", "bad_utf8"),
        (b'{"x": "\xed\xa0\x80"}', "bad_utf8"),  # an encoded surrogate
        (b'{"x": "\\ud800"}', "bad_utf8"),  # a lone surrogate escape: no database stores it
        (b'{"\\udc00": 1}', "bad_utf8"),
        (b'{"x": ["ok", "a\\u0000b"]}', "bad_utf8"),  # a NUL escape: PostgreSQL stores no NUL in text or jsonb
        (b'{"a\\u0000": 1}', "bad_utf8"),
        (b'{"status": "online", "status": "offline"}', "duplicate_key"),
        (b'{"a": {"b": 1, "b": 2}}', "duplicate_key"),
        (b"x" * 20000, "too_large"),
        (b'{"x": ', "bad_json"),
        (ESCAPED_QUOTES, "too_deep"),
    ],
)
def test_hostile_documents_are_refused_with_their_reason(raw, reason):
    with pytest.raises(JsonRefused) as refused:
        json_decode(raw)
    assert refused.value.reason == reason, f"{raw[:40]!r}: {refused.value}"


def test_duplicate_keys_are_refused_deterministically_even_when_many():
    raw = b"{" + b",".join(b'"k": %d' % n for n in range(20000)) + b"}"
    with pytest.raises(JsonRefused, match="duplicate_key: k"):
        json_decode(raw, limits=JsonLimits(max_bytes=len(raw)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": [[[[1]]]], "b": "[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{"}', {"a": [[[[1]]]], "b": "[" * 25 + "{" * 6}),
        (b'{"x": "\\ud83d\\ude00"}', {"x": "\U0001f600"}),  # an escaped surrogate pair is one character
        (b'{"seq": 18446744073709551616, "v": 1.5e-300}', {"seq": 2**64, "v": 1.5e-300}),
        (b'{"a": ' * 16 + b"1" + b"}" * 16, None),
    ],
)
def test_ordinary_documents_decode_as_json_does(raw, expected):
    assert json_decode(raw) == (expected if expected is not None else json.loads(raw))


def test_limits_are_configurable():
    with pytest.raises(JsonRefused, match="too_large"):
        json_decode(b"[1, 2, 3]", limits=JsonLimits(max_bytes=4))
    assert json_decode(b"[[1]]", limits=JsonLimits(max_depth=2)) == [[1]]


def test_an_unterminated_string_is_scanned_once_not_from_every_quote_in_it():
    """The depth check strips string literals before counting brackets. An unterminated string made of escaped
    quotes failed to match from its first quote after scanning to the end, and then again from each of its 8,174
    escaped quotes: 16 KiB took 0.5-1.2 s to refuse (0.1-0.4 ms now, measured beside this test; never a timing
    assertion). Linear by construction: the literal that starts at the first quote takes everything after it."""
    text = ESCAPED_QUOTES.decode()
    first_quote = text.index('"')
    match = STRING_LITERAL.match(text, first_quote)
    assert match is not None and match.end() == len(text), "the scan from the first quote must reach the end"
    with pytest.raises(JsonRefused) as refused:
        json_decode(ESCAPED_QUOTES)
    assert refused.value.reason == "too_deep"
