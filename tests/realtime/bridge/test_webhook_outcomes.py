"""Escalation webhook outcomes as housekeeping records them: each on its own, none lost with another's failure, no
page posted twice; and one that can never be recorded is given up after a bounded number of ticks (dead-lettered,
counted, logged once), not retried and logged every tick for ever with its page neither posted nor dead-lettered.
"""

import logging
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from devices.models import Alarm, DeadLetter, EscalationDelivery
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource, AlarmState, DeliveryState
from realtime import metrics
from realtime.bridge import outcomes as outcomes_module
from realtime.bridge.housekeeping import Housekeeping
from realtime.bridge.outcomes import UNRECORDED_TICKS_MAX
from tests.factories import make_device, make_ward, pump_taken_out_of_use

pytestmark = pytest.mark.django_db


class Sender:
    """Stands in for `WebhookSender` (its threads and HTTP are the integration test's): outcomes are handed in."""

    def __init__(self) -> None:
        self.in_flight: set[int] = set()
        self.outcomes: list[tuple[int, bool, str]] = []
        self.posted: list[int] = []

    def submit(self, delivery_id: int, url: str, body: bytes) -> None:
        self.in_flight.add(delivery_id)
        self.posted.append(delivery_id)

    def finished(self) -> list[tuple[int, bool, str]]:
        outcomes, self.outcomes = self.outcomes, []
        self.in_flight -= {delivery_id for delivery_id, _, _ in outcomes}
        return outcomes

    def answer(self, *, delivered: bool = True) -> None:
        self.outcomes += [(delivery_id, delivered, "") for delivery_id in sorted(self.in_flight)]


@pytest.fixture
def paging(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [1.0], "ESCALATION_MEDIUM_S": [],
                           "ESCALATION_LOW_S": [], "ESCALATION_TIER_WEBHOOKS": ["http://pager.test/t1"],
                           "ESCALATION_WEBHOOK_TRIES": 3, "ESCALATION_WEBHOOK_RETRY_S": 2.0}  # fmt: skip
    housekeeping = Housekeeping()
    housekeeping.webhooks = Sender()
    ward, start = make_ward("paging"), timezone.now()
    for device_id in ("PAGE_A", "PAGE_B", "PAGE_C"):
        make_device(device_id, ward=ward)
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, now=start - timedelta(seconds=5))  # fmt: skip
    housekeeping.escalations(start)  # each alarm reaches tier 1; its page is posted
    assert len(housekeeping.webhooks.posted) == 3
    return housekeeping, start


def test_a_page_whose_pump_was_deleted_meanwhile_does_not_stop_the_others_being_recorded(paging):
    housekeeping, start = paging
    housekeeping.webhooks.answer()
    pump_taken_out_of_use("PAGE_A")  # with its alarm and delivery, while the post was under way
    housekeeping.escalations(start + timedelta(seconds=1))
    states = dict(EscalationDelivery.objects.values_list("alarm__device__device_id", "state"))
    assert states == {"PAGE_B": DeliveryState.DELIVERED, "PAGE_C": DeliveryState.DELIVERED}
    housekeeping.escalations(start + timedelta(seconds=10))
    assert len(housekeeping.webhooks.posted) == 3, "a delivered page was posted again"


def test_an_outcome_that_cannot_be_recorded_now_is_kept_and_its_page_not_posted_again(paging, monkeypatch):
    housekeeping, start = paging
    housekeeping.webhooks.answer()
    real, failing = outcomes_module.escalation_delivery_record, {"PAGE_B"}

    def record(*, delivery_id, **outcome):
        if EscalationDelivery.objects.get(pk=delivery_id).alarm.device.device_id in failing:
            raise OperationalError("database is locked")
        return real(delivery_id=delivery_id, **outcome)

    monkeypatch.setattr(outcomes_module, "escalation_delivery_record", record)
    housekeeping.escalations(start + timedelta(seconds=3))  # PAGE_B's delivery is due a retry by now, if pending
    states = dict(EscalationDelivery.objects.values_list("alarm__device__device_id", "state"))
    assert states["PAGE_A"] == states["PAGE_C"] == DeliveryState.DELIVERED, "one failure lost the other outcomes"
    assert states["PAGE_B"] == DeliveryState.PENDING and len(housekeeping.webhooks.posted) == 3, "posted twice"
    assert housekeeping.escalations_due_by(start + timedelta(seconds=3)), "asleep with an outcome unrecorded"
    failing.clear()
    housekeeping.escalations(start + timedelta(seconds=4))
    assert EscalationDelivery.objects.get(alarm__device__device_id="PAGE_B").state == DeliveryState.DELIVERED
    assert len(housekeeping.webhooks.posted) == 3


def fail_to_record(monkeypatch, failing: set[str], error: Exception) -> None:
    """Recording the outcome of the pages of the pumps in `failing` raises `error`."""
    real = outcomes_module.escalation_delivery_record

    def record(*, delivery_id, **outcome):
        if EscalationDelivery.objects.get(pk=delivery_id).alarm.device.device_id in failing:
            raise error
        return real(delivery_id=delivery_id, **outcome)

    monkeypatch.setattr(outcomes_module, "escalation_delivery_record", record)


@pytest.mark.parametrize("delivered", [False, True], ids=["post-failed", "post-delivered"])
def test_an_outcome_that_can_never_be_recorded_is_given_up_dead_lettered_and_logged_once(
    paging, monkeypatch, caplog, delivered
):
    housekeeping, start = paging
    housekeeping.webhooks.answer(delivered=delivered)
    fail_to_record(monkeypatch, {"PAGE_B"}, ValueError("a row this code cannot store"))
    caplog.set_level(logging.INFO, logger=outcomes_module.__name__)
    ticks = UNRECORDED_TICKS_MAX + 20
    for tick in range(ticks):
        housekeeping.escalations(start + timedelta(seconds=1 + tick / 2))
    delivery = EscalationDelivery.objects.get(alarm__device__device_id="PAGE_B")
    expected = DeliveryState.DELIVERED if delivered else DeliveryState.DEAD
    assert delivery.state == expected, (
        f"after {ticks} ticks the page whose outcome ({'delivered' if delivered else 'failed'}) cannot be recorded "
        f"is still {delivery.state}: retried every tick for ever, neither posted again nor dead-lettered"
    )
    assert delivery.pk not in housekeeping.unrecorded, "housekeeping still holds the unrecordable outcome"
    logged = [record for record in caplog.records if getattr(record, "delivery_id", None) == delivery.pk]
    assert len(logged) <= 2, f"logged {len(logged)} times for one unrecordable outcome: {[r.msg for r in logged]}"
    assert DeadLetter.objects.filter(source="escalation_webhook", reason="outcome_unrecorded").count() == 1
    failed = Alarm.objects.filter(device__device_id="PAGE_B", type="escalation_failed", state=AlarmState.ACTIVE)
    assert failed.exists() != delivered, "the station must hear that a page may not have gone out (and only then)"
    assert housekeeping.webhooks.posted.count(delivery.pk) == 1, "the page was posted again"


def test_a_database_outage_is_not_mistaken_for_an_unrecordable_outcome(paging, monkeypatch):
    """A locked or lost database is what the retry is for: kept however long it lasts, recorded once it is back."""
    housekeeping, start = paging
    housekeeping.webhooks.answer()
    failing = {"PAGE_B"}
    fail_to_record(monkeypatch, failing, OperationalError("database is locked"))
    for tick in range(UNRECORDED_TICKS_MAX + 5):
        housekeeping.escalations(start + timedelta(seconds=1 + tick / 2))
    assert EscalationDelivery.objects.get(alarm__device__device_id="PAGE_B").state == DeliveryState.PENDING
    failing.clear()
    housekeeping.escalations(start + timedelta(seconds=60))
    assert EscalationDelivery.objects.get(alarm__device__device_id="PAGE_B").state == DeliveryState.DELIVERED
    assert not DeadLetter.objects.exists()


def test_an_outcome_that_cannot_even_be_given_up_is_logged_counted_and_bounded(paging, monkeypatch, caplog):
    """Giving an unrecordable outcome up failed too: it was tried every tick with no log after the first, for ever,
    its page neither posted again nor dead-lettered, nobody told. Now it is logged once at error level, counted,
    tried again after a doubling delay (not every tick), dead-lettered after a bound, and given up once it can be."""
    housekeeping, start = paging
    housekeeping.webhooks.answer(delivered=False)
    fail_to_record(monkeypatch, {"PAGE_B"}, ValueError("a row this code cannot store"))
    give_up, tries = outcomes_module.escalation_delivery_give_up, []

    def failing_give_up(**kwargs):
        tries.append(kwargs["delivery_id"])
        raise ValueError("cannot give it up either")

    monkeypatch.setattr(outcomes_module, "escalation_delivery_give_up", failing_give_up)
    failures = metrics.HOUSEKEEPING_ROW_FAILURES.labels(check="outcomes")
    before = failures._value.get()
    caplog.set_level(logging.INFO)
    for tick in range(400):  # 200 s of ticks
        housekeeping.escalations(start + timedelta(seconds=1 + tick / 2))
    delivery = EscalationDelivery.objects.get(alarm__device__device_id="PAGE_B")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and getattr(r, "row_id", None) == delivery.pk]
    assert errors and errors[0].getMessage().startswith("housekeeping row failed"), "its failure was never logged"
    assert len(errors) <= 2, f"logged {len(errors)} times at error level (once, then once when dead-lettered)"
    assert 1 < len(tries) < 20, f"given up {len(tries)} times in 400 ticks: tried every tick, or never again"
    assert failures._value.get() - before == len(tries), "each failure to give it up is counted"
    letters = DeadLetter.objects.filter(source="housekeeping", reason="row_failed", topic=f"outcomes/{delivery.pk}")
    assert letters.count() == 1, "after a bound it is dead-lettered (once)"
    assert housekeeping.webhooks.posted.count(delivery.pk) == 1, "the page was posted again"
    monkeypatch.setattr(outcomes_module, "escalation_delivery_give_up", give_up)
    housekeeping.escalations(start + timedelta(seconds=600))
    assert EscalationDelivery.objects.get(pk=delivery.pk).state == DeliveryState.DEAD
    assert Alarm.objects.filter(device__device_id="PAGE_B", type="escalation_failed", state=AlarmState.ACTIVE).exists()
    assert delivery.pk not in housekeeping.unrecorded
