"""A Stop or Pause acts only on the infusion the nurse's dialog named (review 3, "command for another infusion").

The monitor's dialog names the infusion ("Stop the infusion of Heparin for Ann Lee in bed 4") when it opens. On the
old code the page POSTed `{command, reason, idempotencyKey}` and the server stopped whatever was on the pump when the
request arrived: a Stop confirmed on a stale page after the Heparin order ended, and a colleague started
Noradrenaline on the same pump, stopped the Noradrenaline. The page now sends the `infusionId` it showed (null: the
pump's own infusion, without an order), and the server refuses (409 `infusion_changed`) another one.
"""

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.states import CommandKind, SessionStatus
from tests.factories import make_device, make_user, make_ward, signed_in
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

USER_COMMANDS = (CommandKind.STOP_INFUSION, CommandKind.PAUSE_INFUSION)


@pytest.fixture
def nurse_client() -> Client:
    ward = make_ward("icu")
    make_device("STALE_1", ward=ward, last_seen_at=timezone.now())
    return signed_in(make_user("nurse", ward=ward))


def command(client: Client, body: dict):
    body = {"askedAt": timezone.now().isoformat(), **body}  # pressed just now
    return client.post("/api/devices/STALE_1/commands/", body, content_type="application/json",
                       HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)  # fmt: skip


@pytest.mark.parametrize("kind", ["stop", "pause"])
def test_a_command_confirmed_for_an_ended_infusion_does_not_act_on_the_next_one(
    kind, nurse_client, django_capture_on_commit_callbacks
):
    heparin = confirmed_order("STALE_1", drug="Heparin")  # what the nurse's dialog names
    ingest([report("STALE_1", "completion", {"completed": True, "infusionId": heparin.infusion_id})],
           django_capture_on_commit_callbacks)  # fmt: skip
    noradrenaline = confirmed_order("STALE_1", drug="Noradrenaline")  # a colleague's new order, now running
    response = command(nurse_client, {"command": kind, "reason": "", "idempotencyKey": "dialog-1",
                                      "infusionId": heparin.infusion_id})  # fmt: skip
    queued = Command.objects.filter(session=noradrenaline, kind__in=USER_COMMANDS)
    assert not queued.exists(), (
        f"a {kind} confirmed for the Heparin infusion (ended) was queued for the Noradrenaline infusion now running "
        f"(answer {response.status_code}): it acts on whatever is on the pump, not on what the nurse saw"
    )
    assert response.status_code == 409 and response.json()["code"] == "infusion_changed", response.content
    assert "Noradrenaline" in response.json()["message"], "the refusal says what is on the pump now"
    assert InfusionSession.objects.get(pk=noradrenaline.pk).status == SessionStatus.RUNNING


def test_a_stop_confirmed_for_a_pump_without_an_order_does_not_stop_an_order_placed_since(
    nurse_client, django_capture_on_commit_callbacks
):
    ingest([report("STALE_1", "progress", {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 2.0})],
           django_capture_on_commit_callbacks)  # the dialog said "runs WITHOUT an order"  # fmt: skip
    ingest([report("STALE_1", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    order = confirmed_order("STALE_1", drug="Noradrenaline")
    response = command(nurse_client, {"command": "stop", "idempotencyKey": "dialog-2", "infusionId": None})
    assert response.status_code == 409 and response.json()["code"] == "infusion_changed", response.content
    assert not Command.objects.filter(kind=CommandKind.STOP_INFUSION).exists(), "a STOP went to the new order"
    assert InfusionSession.objects.get(pk=order.pk).status == SessionStatus.RUNNING


def test_the_infusion_shown_is_required_and_the_one_on_the_pump_is_commanded(
    nurse_client, django_capture_on_commit_callbacks
):
    order = confirmed_order("STALE_1", drug="Heparin")
    missing = command(nurse_client, {"command": "pause", "idempotencyKey": "dialog-3"})
    assert missing.status_code == 400 and missing.json()["field"] == "infusionId", missing.content
    answer = command(nurse_client, {"command": "pause", "idempotencyKey": "dialog-4", "infusionId": order.infusion_id})
    assert answer.status_code == 202, answer.content
    assert Command.objects.get(kind=CommandKind.PAUSE_INFUSION).payload["infusionId"] == order.infusion_id


def test_stop_of_the_pumps_own_infusion_names_none(nurse_client, django_capture_on_commit_callbacks):
    ingest([report("STALE_1", "progress", {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 2.0})],
           django_capture_on_commit_callbacks)  # fmt: skip
    answer = command(nurse_client, {"command": "stop", "idempotencyKey": "dialog-5", "infusionId": None})
    assert answer.status_code == 202, answer.content
    stop = Command.objects.get(kind=CommandKind.STOP_INFUSION)
    assert stop.session is None and stop.payload["infusionId"] is None
