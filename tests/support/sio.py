"""Realtime test helpers: a signed-in session's cookie, real Socket.IO and Channels clients, a state reducer.

`session_cookie(user)` gives the `Cookie` header value of a fresh Django session (in the shared test
database, so Daphne accepts it). `StreamClient` is a real python-socketio client on the websocket
transport that records every event in order. `DeviceState` applies events the way a browser does, so
"snapshot + events == a fresh snapshot" can be asserted.
"""

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar
from importlib import import_module
from pathlib import Path
from typing import Any

import engineio
import requests
import socketio
import websocket
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

from devices.states import ACTIVE_SESSION_STATUSES, COMMAND_UNSETTLED_STATES
from protocol import events

# Derived from the clock when read, so two snapshots taken apart may differ without any change; and
# `lastSeenAt`, which the bridge refreshes on every message without recording a `device:status` change.
TIME_DERIVED_STATUS_FIELDS = ("status", "connectivity", "lastSeenAt")


def session_cookie(user) -> str:
    """A new signed-in Django session for `user`, as a `Cookie` header value."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def page_asks_again(message: str) -> bool:
    """Whether the browser asks again for a stream refused with this `error` message (`static/js/live.js`
    `SUBSCRIBE_LATER`): read from the page's code, so that the server's wording and the page's cannot drift apart."""
    live_js = (Path(__file__).resolve().parents[2] / "static" / "js" / "live.js").read_text()
    pattern = re.search(r"^const SUBSCRIBE_LATER = /(.+)/i;$", live_js, re.MULTILINE)
    assert pattern, "static/js/live.js no longer says which refusals it asks again after"
    return re.search(pattern.group(1), message, re.IGNORECASE) is not None


class BrowserSession:
    """A signed-in browser over plain HTTP (real sign-in and sign-out forms, CSRF included)."""

    def __init__(self, base_url: str, username: str, password: str = "pw-for-tests-only") -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(f"{base_url}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.post("/accounts/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token})
        if self.cookie(settings.SESSION_COOKIE_NAME) is None:
            raise AssertionError(f"sign-in as {username} failed")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    @property
    def cookie_header(self) -> str:
        """The `Cookie` header a browser would send (session and CSRF cookies)."""
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def post(self, path: str, form: dict | None = None, *, expect: tuple[int, ...] = (200,)) -> int:
        """POST a form with the CSRF token; returns the status (AssertionError if not expected)."""
        headers = {"X-CSRFToken": self.cookie("csrftoken") or "", "Referer": f"{self.base_url}{path}"}
        data = urllib.parse.urlencode(form or {}).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, headers=headers)
        try:
            status = self.opener.open(request).status
        except urllib.error.HTTPError as error:
            status = error.code
            body = error.read()[:300]
        else:
            body = b""
        if status not in expect:
            raise AssertionError(f"POST {path} answered {status}: {body!r}")
        return status

    def answer(self, path: str, form: dict) -> tuple[int, dict]:
        """POST a form with the CSRF token; returns the status and the JSON body, whatever the status."""
        headers = {"X-CSRFToken": self.cookie("csrftoken") or "", "Referer": f"{self.base_url}{path}"}
        request = urllib.request.Request(f"{self.base_url}{path}", data=urllib.parse.urlencode(form).encode(),
                                         headers=headers)  # fmt: skip
        try:
            response = self.opener.open(request)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        return response.status, json.loads(response.read() or b"{}")

    def sign_out(self) -> int:
        return self.post("/accounts/logout/")


class EventLog:
    """Events in arrival order, with waiting helpers (thread-safe)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = threading.Condition()

    def append(self, event: str, data: Any) -> None:
        with self._changed:
            self.items.append((event, data))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str, Any], bool], *, timeout: float = 5.0, start: int = 0) -> Any:
        """The first event at index >= `start` matching `predicate`; AssertionError naming what arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event, data in self.items[start:]:
                    if predicate(event, data):
                        return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [name for name, _ in self.items[start:]][-20:]
                    raise AssertionError(f"no matching event within {timeout}s; last events: {seen}")
                self._changed.wait(remaining)

    def named(self, name: str, *, device_id: str | None = None) -> list[Any]:
        """Payloads of every event called `name` (optionally of one pump)."""
        with self._changed:
            return [d for e, d in self.items if e == name and (device_id is None or d.get("deviceId") == device_id)]

    def device_events(self, device_id: str) -> list[tuple[str, dict]]:
        """Every `device:*` event of one pump, in order."""
        with self._changed:
            return [(e, d) for e, d in self.items if e.startswith("device:") and d.get("deviceId") == device_id]

    def alarms_shown(self) -> list[dict]:
        """`silence:ward`'s `seen`: the active alarms a station holds from its ward feeds (each full or partial
        `ward:summary`'s pumps, then each `ward:alarm`, in arrival order), as `{id, alerts, tier}`."""
        held: dict[int, dict] = {}
        with self._changed:
            for event, data in self.items:
                if event == events.WARD_SUMMARY:
                    pumps = {pump["deviceId"] for pump in data.get("pumps", [])} | set(data.get("left", []))
                    held = {} if data.get("full") else held  # a full summary is every pump the feed has
                    held = {key: alarm for key, alarm in held.items() if alarm["pump"] not in pumps}
                    held |= {alarm["id"]: {**alarm, "pump": pump["deviceId"]} for pump in data.get("pumps", [])
                             for alarm in pump.get("alarms", [])}  # fmt: skip
                elif event == events.WARD_ALARM and data["alarm"]["state"] == "active":
                    held[data["alarm"]["id"]] = {**data["alarm"], "pump": data["deviceId"]}
                elif event == events.WARD_ALARM:
                    held.pop(data["alarm"]["id"], None)
        return [{"id": alarm["id"], "alerts": alarm["alerts"], "tier": (alarm.get("escalation") or {}).get("level", 0)}
                for alarm in held.values()]  # fmt: skip


# python-engineio's client decodes a long-poll response with its server's guard against a client's flood: more
# than 16 packets and it drops the connection ('Unexpected packet from server, aborting'). The server flushes all
# it has queued for a client in one response, so a polling test client that polls less often than its pump
# changes (a loaded machine, a snapshot's six events) was cut off (twice in CI, test_consistency.py). A browser's
# engine.io-client decodes any number: the test clients do the same.
engineio.payload.Payload.max_decode_packets = 100_000


class _InOrderEngineIOClient(engineio.Client):
    """Hands messages to Socket.IO one at a time, in arrival order, on one dispatcher thread of its own.

    python-engineio 4.x starts a new thread for every message (`run_async=True`), so under load two events'
    handlers run out of order and a test sees `seq` 166 before 165 that the server sent in order. (Not on
    the reader thread itself: a server's disconnect handled there would join that very thread.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message" and kwargs.get("run_async"):
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch, args=(self._inbox,), daemon=True)
                self._dispatcher.start()
            self._inbox.put(args)
            return None
        if event == "disconnect":  # the dispatcher ends after the messages already queued; a new one follows
            self._inbox.put(None)
            self._inbox, self._dispatcher = queue.SimpleQueue(), None
        return super()._trigger_event(event, *args, **kwargs)

    def _dispatch(self, inbox: queue.SimpleQueue) -> None:
        while (args := inbox.get()) is not None:
            super()._trigger_event("message", *args)


class InOrderClient(socketio.Client):
    """A python-socketio client whose event handlers run one at a time, in the order the events arrived."""

    def _engineio_client_class(self) -> type:
        return _InOrderEngineIOClient


class StreamClient:
    """A real python-socketio client (websocket transport, or Engine.IO long-polling: the page's fallback) that
    records every event it receives."""

    def __init__(self, base_url: str, *, cookie: str | None = None, token: str | None = None,
                 origin: str | None = None, transport: str = "websocket") -> None:  # fmt: skip
        self.base_url, self.transport = base_url, transport
        self.headers = {"Cookie": cookie} if cookie else {}
        self.auth = {"token": token} if token else None
        self.events = EventLog()
        self.disconnected = threading.Event()
        # websocket-client sends the server's own origin unless told otherwise; an extra Origin header
        # would be sent twice, so a foreign origin goes through its option.
        options: dict[str, Any] = {"websocket_extra_options": {"origin": origin} if origin else {}}
        if transport == "polling" and cookie:  # every long-poll request carries the cookie, as a browser's do
            options["http_session"] = requests.Session()
            options["http_session"].headers["Cookie"] = cookie
        if transport == "polling":  # why a polling client ends its connection shows in the test's captured log
            options["engineio_logger"] = logging.getLogger("engineio.client.polling")
        self.client = InOrderClient(reconnection=False, **options)
        self.client.on("*", self.events.append)
        self.client.on("disconnect", lambda *args: self.disconnected.set())
        self.refusal: Any = None
        self.client.on("connect_error", self._refused)

    def _refused(self, data: Any = None) -> None:
        self.refusal = data

    def connect(self, *, timeout: float = 5.0) -> "StreamClient":
        """Connect or raise `socketio.exceptions.ConnectionError` with the server's reason."""
        try:
            self.client.connect(self.base_url, headers=self.headers, auth=self.auth, transports=[self.transport],
                                wait_timeout=timeout)  # fmt: skip
        except socketio.exceptions.ConnectionError as exc:
            raise socketio.exceptions.ConnectionError(f"{exc} (server said: {self.refusal})") from exc
        return self

    def subscribe(self, device_id: str, *, timeout: float = 5.0) -> tuple[str, dict]:
        """Send `subscribe:device`; returns (`stream:subscribed` or `error`, its payload)."""
        start = len(self.events.items)
        self.client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": device_id})
        return self._reply(start, device_id, timeout)

    def _reply(self, start: int, device_id: str, timeout: float) -> tuple[str, dict]:
        found: list[tuple[str, dict]] = []

        def is_reply(event: str, data: Any) -> bool:
            hit = event == events.ERROR or (event == events.STREAM_SUBSCRIBED and data.get("deviceId") == device_id)
            if hit:
                found.append((event, data))
            return hit

        self.events.wait_for(is_reply, timeout=timeout, start=start)
        return found[0]

    def emit(self, event: str, data: Any) -> None:
        self.client.emit(event, data)

    def close(self) -> None:
        if not self.client.connected:
            return
        if self.transport == "polling":  # its close waits for the pending long-poll GET, which the server leaves
            threading.Thread(target=self.client.disconnect, daemon=True).start()  # open ~30 s: not waited for
            return
        self.client.disconnect()


class ChannelsClient:
    """A plain WebSocket client of the Channels endpoint, speaking `{"event", "data"}` frames."""

    def __init__(self, base_url: str, *, cookie: str | None = None, token: str | None = None) -> None:
        headers = [f"Cookie: {cookie}"] if cookie else []
        if token:
            headers.append(f"Authorization: Bearer {token}")
        url = base_url.replace("http://", "ws://") + "/ws/devices/"
        self.socket = websocket.create_connection(url, header=headers, timeout=5)
        self.events = EventLog()
        self.closed = threading.Event()  # set when the server closed the connection (or it broke)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                try:
                    frame = self.socket.recv()
                except websocket.WebSocketTimeoutException:
                    continue  # 5 s without a frame (the connect timeout stays on the socket): keep listening
                except (websocket.WebSocketException, OSError):
                    return
                if not frame:
                    return
                message = json.loads(frame)
                self.events.append(message["event"], message["data"])
        finally:
            self.closed.set()

    def emit(self, event: str, data: Any) -> None:
        self.socket.send(json.dumps({"event": event, "data": data}))

    def close(self) -> None:
        self.socket.close()


class DeviceState:
    """A pump's state as a client holds it: apply the snapshot, then live events, in order."""

    def __init__(self) -> None:
        self.seq = 0
        self.status: dict | None = None
        self.session: dict | None = None
        self.confirmation: dict | None = None
        self.progress: dict | None = None
        self.alarms: dict[Any, dict] = {}
        self.commands: dict[str, dict] = {}

    def apply(self, event: str, data: dict) -> None:
        """Apply one `device:*` event (news-only events, like `device:error`, change no state)."""
        self.seq = max(self.seq, data["seq"])
        if event == events.DEVICE_STATUS:
            self.status = {k: v for k, v in data["status"].items() if k not in TIME_DERIVED_STATUS_FIELDS}
        elif event == events.DEVICE_SESSION:
            self._apply_session(data["session"])
        elif event == events.DEVICE_INFUSION_CONFIRMED and self._is_current(data["confirmation"]):
            self.confirmation = data["confirmation"]
        elif event == events.DEVICE_PROGRESS and (self.session is None or self._is_current(data["progress"])):
            self.progress = data["progress"]
        elif event == events.DEVICE_ALARM:
            self._keep_if(self.alarms, data["alarm"]["id"], data["alarm"], data["alarm"]["state"] == "active")
        elif event == events.DEVICE_COMMAND:
            command = data["command"]
            self._keep_if(self.commands, command["commandId"], command, command["state"] in COMMAND_UNSETTLED_STATES)
        elif event == events.DEVICE_REMOVED:  # the pump was deleted: nothing of it holds any more
            self.status = self.session = self.confirmation = self.progress = None
            self.alarms, self.commands = {}, {}

    def _apply_session(self, session: dict) -> None:
        if session["status"] in ACTIVE_SESSION_STATUSES:
            if not self._is_current(session):
                self.confirmation = self.progress = None
            self.session = session
        elif self._is_current(session):
            self.session = self.confirmation = self.progress = None

    def _is_current(self, item: dict) -> bool:
        return self.session is not None and item.get("infusionId") == self.session["infusionId"]

    @staticmethod
    def _keep_if(items: dict, key: Any, value: dict, keep: bool) -> None:
        if keep:
            items[key] = value
        else:
            items.pop(key, None)

    def as_dict(self) -> dict:
        """Comparable form."""
        return {"seq": self.seq, "status": self.status, "session": self.session, "confirmation": self.confirmation,
                "progress": self.progress, "alarms": self.alarms, "commands": self.commands}  # fmt: skip


def state_from_events(device_events: list[tuple[str, dict]]) -> DeviceState:
    """Apply events of one pump in order (a snapshot followed by live events)."""
    state = DeviceState()
    for event, data in device_events:
        state.apply(event, data)
    return state


def stream_client_once_admitted(url: str, cookie: str, timeout: float = 5.0) -> StreamClient:
    """A connected socket, retried until the server has counted a closed one out (the count drops asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return StreamClient(url, cookie=cookie).connect()
        except socketio.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
