"""The bridge's escalation webhook sender: HTTP posts on threads of their own, never in the database worker.

Housekeeping hands it due deliveries (`devices/services/deliveries.py`) and records the outcomes it
returns on a later tick, so a slow or dead receiver never holds up pump messages. Each post is signed:
`X-PumpStream-Signature: sha256=HMAC(secret, "<X-PumpStream-Timestamp>.<body>")`.
"""

import logging
import queue
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings

from devices.services.escalations import webhook_signature

logger = logging.getLogger(__name__)

Outcome = tuple[int, bool, str]  # delivery id, delivered, error


SENDERS = 4  # posts under way at once: one receiver timing out does not hold every other page back


class WebhookSender:
    """A few daemon threads posting queued deliveries; `finished()` hands back their outcomes."""

    def __init__(self, *, senders: int = SENDERS) -> None:
        self._jobs: queue.SimpleQueue[tuple[int, str, bytes]] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.in_flight: set[int] = set()
        self._senders = senders
        self._threads: list[threading.Thread] = []

    def submit(self, delivery_id: int, url: str, body: bytes) -> None:
        """Queue one post (the threads start lazily: most installs have no webhook)."""
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while len(self._threads) < self._senders:
            thread = threading.Thread(target=self._run, name=f"webhooks-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.in_flight.add(delivery_id)
        self._jobs.put((delivery_id, url, body))

    def finished(self) -> list[Outcome]:
        """The outcomes of posts that ended since the last call."""
        outcomes = []
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return outcomes
            self.in_flight.discard(outcome[0])
            outcomes.append(outcome)

    def _run(self) -> None:
        while True:
            delivery_id, url, body = self._jobs.get()
            self._outcomes.put((delivery_id, *post(url, body, delivery_id=delivery_id)))


def post(url: str, body: bytes, *, delivery_id: int) -> tuple[bool, str]:
    """POST one signed delivery; (True, "") on a 2xx answer, else (False, why)."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "PumpStream-escalation/1",
        "X-PumpStream-Delivery": str(delivery_id),
        "X-PumpStream-Timestamp": timestamp,
        "X-PumpStream-Signature": webhook_signature(
            secret=settings.ESCALATION_WEBHOOK_SECRET, timestamp=timestamp, body=body
        ),  # fmt: skip
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.PUMPSTREAM["ESCALATION_WEBHOOK_TIMEOUT_S"]) as answer:
            return 200 <= answer.status < 300, "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        logger.warning("escalation webhook failed", extra={"delivery_id": delivery_id, "reason": str(error)[:200]})
        return False, str(error)[:200]
