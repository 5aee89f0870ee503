"""Hypothesis fuzzing of what clients send: Socket.IO/Channels requests and the HTTP JSON endpoints, in-process."""

import json
import urllib.parse

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocol import events
from realtime.consumers import DeviceStreamConsumer
from realtime.sio.auth import Principal
from realtime.sio.subscriptions import Subscriber
from realtime.sio.ward_feed import ward_feed
from tests.factories import make_device, make_user, make_ward
from tests.realtime.fuzz.strategies import json_values

pytestmark = pytest.mark.django_db

MALFORMED_PREFIXES = ("Expected {", "Unknown request")
identifiers = st.sampled_from(["PUMP_0001", "PUMP_OTHER", "PUMP_NONE", "icu", "er", "*", "", "PUMP_0001\n"]) | st.text(
    max_size=70
)
request_payloads = json_values | st.fixed_dictionaries(
    {},
    optional={
        "deviceId": identifiers | json_values,
        "deviceIds": st.lists(identifiers, max_size=60) | json_values,
        "ward": identifiers | json_values,
    },
)
request_events = st.sampled_from(events.CLIENT_REQUESTS) | st.text(max_size=50)


class RunningTask:
    """Stands in for the ward feed's tick task, so no task outlives a test's short-lived event loop."""

    def done(self) -> bool:
        return False


@pytest.fixture
def watcher(monkeypatch) -> Principal:
    """A nurse of "icu" (PUMP_0001) who may not see "er" (PUMP_OTHER)."""
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    make_device("PUMP_OTHER", ward=make_ward("er"))
    monkeypatch.setattr(ward_feed, "_task", RunningTask())
    return Principal(user=make_user("watcher", ward=icu, can_command=False))


class Recorder:
    """What a transport would do for a `Subscriber`: collect what is sent and which rooms are joined."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.joined: list[str] = []

    async def send(self, name: str, payload: dict) -> None:
        json.dumps(payload, allow_nan=False)  # whatever is sent must be valid JSON
        self.sent.append((name, payload))

    async def join(self, device_id: str) -> None:
        self.joined.append(device_id)

    async def leave(self, device_id: str) -> None:
        pass


def check_good_subscribe_still_works(subscriber: Subscriber, recorder: Recorder) -> None:
    start = len(recorder.sent)
    assert async_to_sync(subscriber.handle)(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
    replies = [name for name, _ in recorder.sent[start:]]
    assert replies[:1] == [events.STREAM_SUBSCRIBED], f"a good subscribe after a bad request got {replies}"


@given(request=request_events, data=request_payloads)
def test_socketio_requests_are_answered_or_refused_and_never_cross_wards(watcher, request, data):
    recorder = Recorder()
    subscriber = Subscriber(watcher, "fuzz-sid", recorder.send, recorder.join, recorder.leave)
    try:
        keep = async_to_sync(subscriber.handle)(request, data)
        assert keep, "one bad request alone never closes the connection"
        errors = [payload["message"] for name, payload in recorder.sent if name == events.ERROR]
        malformed = [message for message in errors if message.startswith(MALFORMED_PREFIXES)]
        assert subscriber.limits.strikes == len(malformed), "every malformed request is counted as a strike"
        assert set(recorder.joined) <= {"PUMP_0001"}, f"joined a pump outside the user's wards: {recorder.joined}"
        summaries = [payload for name, payload in recorder.sent if name == events.WARD_SUMMARY]
        assert all(p["deviceId"] != "PUMP_OTHER" for s in summaries for p in s["pumps"]), "ward feed leaked a pump"
        event("refused" if errors else "accepted")
        check_good_subscribe_still_works(subscriber, recorder)
    finally:
        subscriber.close()


frames = (
    json_values.map(json.dumps)
    | st.fixed_dictionaries({"event": request_events, "data": request_payloads}).map(json.dumps)
    | st.text(max_size=100)
    | st.just("x" * 20_000)
)


@given(frame=frames)
def test_channels_frames_of_any_shape_are_answered_and_never_close_the_connection(watcher, frame):
    recorder = Recorder()
    consumer = DeviceStreamConsumer()
    consumer.subscriber = Subscriber(watcher, "fuzz-channel", recorder.send, recorder.join, recorder.leave)
    closed: list[int] = []

    async def close(code=None) -> None:
        closed.append(code)

    consumer.close = close
    try:
        async_to_sync(consumer.receive)(text_data=frame)
        assert not closed, "one bad frame alone never closes the connection"
        assert set(recorder.joined) <= {"PUMP_0001"}
    finally:
        consumer.subscriber.close()


# HTTP: every JSON endpoint, with hostile paths, bodies and query strings.
path_ids = identifiers.filter(lambda text: text and "/" not in text).map(
    lambda text: urllib.parse.quote(text, safe="")
)  # another URL otherwise
bodies = json_values.map(json.dumps) | st.binary(max_size=100) | st.just("NaN") | st.just('{"rate_ml_h": NaN}')
wizard_like = st.dictionaries(
    st.sampled_from(
        [
            "patient_name",
            "patient_age",
            "patient_weight_kg",
            "patient_bed",
            "patient_allergies",
            "drug",
            "rate_ml_h",
            "volume_ml",
            "time_min",
            "bolus_enabled",
            "bolus_volume_ml",
            "confirm",
            "patient_skipped",
            "command",
            "reason",
        ]
    ),  # fmt: skip
    json_values | st.sampled_from(["start", "pause", "1e309", "-0", "0.0001", "1e-320", "on"]),
    max_size=12,
)


@pytest.fixture
def nurse_client(watcher) -> Client:
    """A signed-in nurse of "icu" who may command and acknowledge (CSRF is tested elsewhere)."""
    client = Client()
    client.force_login(make_user("commander", ward=make_ward("icu")))
    return client


def check_answer(response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.content[:200]!r}"
    assert response["Content-Type"].startswith("application/json"), "the pages read every answer as JSON"
    response.json()


@settings(max_examples=200)  # each example is two requests through the whole middleware stack
@given(device=path_ids, body=bodies | wizard_like.map(json.dumps), json_body=st.booleans(),
       endpoint=st.sampled_from(["infusions", "commands"]))  # fmt: skip
def test_posting_anything_to_the_device_endpoints_is_answered_in_json(nurse_client, device, body, json_body, endpoint):
    url = f"/api/devices/{device}/{endpoint}/"
    if json_body:
        response = nurse_client.post(url, body, content_type="application/json")
    else:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        form = json.loads(text) if text.startswith("{") else {"x": text}
        response = nurse_client.post(url, {k: json.dumps(v) if not isinstance(v, str) else v for k, v in form.items()})
    check_answer(response)
    event(str(response.status_code))
    check_answer(nurse_client.get("/api/devices/PUMP_0001/history/"))


@settings(max_examples=200)
@given(infusion=path_ids, alarm=st.integers(min_value=0, max_value=2**80), query=st.text(max_size=40))
def test_ids_and_queries_of_any_shape_are_answered_in_json(nurse_client, infusion, alarm, query):
    check_answer(nurse_client.get(f"/api/infusions/{infusion}/"))
    check_answer(nurse_client.post(f"/api/infusions/{infusion}/cancel/"))
    check_answer(nurse_client.post(f"/api/alarms/{alarm}/acknowledge/"))
    check_answer(nurse_client.get("/api/devices/PUMP_0001/history/", {"infusionId": query}))
    check_answer(nurse_client.get(f"/api/devices/{infusion}/events/"))
