"""The one safe JSON decoder: every hostile form refused with its reason, never another exception."""

import json

import pytest

from protocol.safejson import JsonLimits, JsonRefused, json_decode

HUGE_INTEGER = b'{"status": "online", "x": ' + b"9" * 4301 + b"}"


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
