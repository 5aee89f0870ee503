"""Request validation, limits, the internal namespace's parsing and secret, and the auth helpers."""

import time

import pytest
from django.test import override_settings

from realtime.sio import limits
from realtime.sio.auth import bearer_token, origin_allowed, session_key_from_cookie_header
from realtime.sio.internal import secret_matches
from realtime.sio.limits import ConnectionLimits, RequestRefused
from realtime.sio.request_fields import DEVICE_ID, parse_field


@pytest.mark.parametrize("payload", [None, "PUMP_0001", [], {"deviceId": 5}, {"deviceId": "a b"},
                                     {"deviceId": "x" * 65}, {"deviceId": ""}, {"device": "PUMP_0001"}])  # fmt: skip
def test_malformed_device_requests_are_refused(payload):
    with pytest.raises(RequestRefused):
        parse_field(payload, "deviceId", DEVICE_ID, ConnectionLimits())


def test_valid_device_request():
    assert parse_field({"deviceId": "PUMP_0001"}, "deviceId", DEVICE_ID, ConnectionLimits()) == "PUMP_0001"


def test_repeated_malformed_requests_become_fatal():
    connection = ConnectionLimits()
    for _ in range(limits.MAX_MALFORMED):
        with pytest.raises(RequestRefused) as refused:
            connection.strike("bad")
        assert not refused.value.fatal
    with pytest.raises(RequestRefused) as refused:
        connection.strike("bad")
    assert refused.value.fatal, "past the limit the connection is closed"


def test_request_rate_is_limited():
    connection = ConnectionLimits()
    for _ in range(limits.REQUEST_BURST):
        connection.check_request()
    with pytest.raises(RequestRefused, match="Too many requests"):
        connection.check_request()


def test_device_subscriptions_are_capped_but_resubscribing_is_fine():
    connection = ConnectionLimits(devices={f"P{n}" for n in range(limits.MAX_DEVICE_SUBSCRIPTIONS)})
    connection.check_device_capacity("P0")
    with pytest.raises(RequestRefused, match="subscribe:ward"):
        connection.check_device_capacity("ONE_MORE")


@override_settings(BRIDGE_INTERNAL_SECRET="s3cret-for-tests")
def test_internal_secret():
    assert secret_matches({"secret": "s3cret-for-tests"})
    assert not secret_matches({"secret": "s3cret-for-test"})
    assert not secret_matches({"token": "s3cret-for-tests"})
    assert not secret_matches(None)
    assert not secret_matches({"secret": 1})


@override_settings(BRIDGE_INTERNAL_SECRET="")
def test_an_unset_internal_secret_matches_nothing():
    assert not secret_matches({"secret": ""})


def test_auth_header_parsing():
    assert session_key_from_cookie_header("csrftoken=a; sessionid=abc123") == "abc123"
    assert session_key_from_cookie_header("csrftoken=a") is None
    assert session_key_from_cookie_header(None) is None
    assert bearer_token("Bearer pst_x") == "pst_x"
    assert bearer_token("Basic pst_x") is None
    assert bearer_token(None) is None


HOSTILE_COOKIE = 'sessionid="' + "\\\\" * 7500 + '"'  # 15 KB of escaped backslashes: inside Twisted's 16 KiB


def test_a_hostile_cookie_header_is_read_in_linear_time():
    """Review 15, finding 11: anyone may send this header before signing in, and it is read on the event loop.
    `http.cookies` unquotes quadratically on Python 3.11.7 (CVE-2024-7592): 0.3 s of the loop for 15 KB."""
    started = time.perf_counter()
    key = session_key_from_cookie_header(HOSTILE_COOKIE)
    took = time.perf_counter() - started
    assert took < 0.02, f"reading the session key from a 15 KB anonymous Cookie header took {took * 1000:.0f} ms"
    assert key is None, "a quoted, escaped value is no session key Django ever sets"


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("sessionid=abc123", "abc123"),
        (" csrftoken = a ;  sessionid = abc123 ; other=x", "abc123"),
        ("sessionid=old0; sessionid=new1", "new1"),  # the last of the name, as Django's request.COOKIES keeps
        ("xsessionid=abc123", None),
        ("sessionid=", None),
        ('sessionid="abc123"', "abc123"),  # quoted, as Django's parser would also unquote it
        ("sessionid=abc 123", None),
        ("sessionid=abc\\123", None),
        ("sessionid", None),
    ],
)
def test_the_session_key_is_the_plain_value_of_its_cookie(header, key):
    assert session_key_from_cookie_header(header) == key


@override_settings(COOKIE_HEADER_MAX_BYTES=100)
def test_a_cookie_header_over_the_limit_carries_no_session():
    assert session_key_from_cookie_header("sessionid=abc123; pad=" + "x" * 100) is None


@override_settings(SOCKETIO_CORS_ALLOWED_ORIGINS=None)
def test_same_origin_rule():
    assert origin_allowed(None, scheme="http", host="h:1"), "non-browser clients send no Origin"
    assert origin_allowed("http://h:1", scheme="http", host="h:1")
    assert not origin_allowed("http://evil:1", scheme="http", host="h:1")


@override_settings(SOCKETIO_CORS_ALLOWED_ORIGINS=["https://wards.example"])
def test_configured_origins():
    assert origin_allowed("https://wards.example", scheme="http", host="h:1")
    assert not origin_allowed("http://h:1", scheme="http", host="h:1")
