"""A start request repeated under its idempotency key (its reply was lost) is answered with the order it placed,
never a second order; the page can ask for the order its request placed (review 22, finding 2)."""

import pytest
from django.test import Client

from devices.models import Command, InfusionSession
from devices.services.requests import infusion_request
from devices.states import CommandKind, SessionStatus
from tests.devices.test_views_api import START_URL, WIZARD, post, running_session
from tests.factories import make_user, signed_in

pytestmark = pytest.mark.django_db

KEY = "6c1d0a4e-1111-4c3b-9d55-000000000001"


def test_a_start_sent_again_under_its_key_is_answered_with_the_order_it_placed(device, nurse):
    client = signed_in(nurse)
    first = post(client, START_URL, {**WIZARD, "idempotencyKey": KEY})
    again = post(client, START_URL, {**WIZARD, "idempotencyKey": KEY})
    assert first.status_code == 201 and again.status_code == 201, (first.content, again.content)
    placed = first.json()["session"]["infusionId"]
    assert again.json()["session"]["infusionId"] == placed, "the repeat was not answered with the order placed"
    assert InfusionSession.objects.filter(device=device).count() == 1, "a repeated start placed a second order"
    assert Command.objects.filter(kind=CommandKind.START_INFUSION).count() == 1, (
        "a repeated start queued a second START"
    )


def test_a_start_without_a_key_or_with_another_key_is_refused_while_the_order_waits(device, nurse):
    client = signed_in(nurse)
    assert post(client, START_URL, {**WIZARD, "idempotencyKey": KEY}).status_code == 201
    for other in ({**WIZARD}, {**WIZARD, "idempotencyKey": "another"}):
        response = post(client, START_URL, other)
        assert response.status_code == 409 and response.json()["code"] == "session_active", response.content


def test_a_key_used_for_another_order_or_by_another_person_is_refused(device, nurse, ward):
    client = signed_in(nurse)
    assert post(client, START_URL, {**WIZARD, "idempotencyKey": KEY}).status_code == 201
    other_rate = post(client, START_URL, {**WIZARD, "rate_ml_h": "60", "idempotencyKey": KEY})
    colleague = post(signed_in(make_user("colleague", ward=ward)), START_URL, {**WIZARD, "idempotencyKey": KEY})
    for response in (other_rate, colleague):
        assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict", response.content
    assert InfusionSession.objects.filter(device=device).count() == 1


def test_a_key_used_for_a_command_is_refused_for_a_start(device, nurse):
    session = running_session(device, nurse)
    infusion_request(device_id=device.device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                     user=nurse, idempotency_key=KEY)  # fmt: skip
    response = post(signed_in(nurse), START_URL, {**WIZARD, "idempotencyKey": KEY})
    assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict", response.content


def test_the_page_can_ask_for_the_order_its_request_placed(device, nurse, ward):
    client = signed_in(nurse)
    url = f"/api/devices/{device.device_id}/starts/{KEY}/"
    assert client.get(url).status_code == 404, "no order was placed under this key yet"
    placed = post(client, START_URL, {**WIZARD, "idempotencyKey": KEY}).json()["session"]["infusionId"]
    answer = client.get(url)
    assert answer.status_code == 200 and answer.json()["session"]["infusionId"] == placed, answer.content
    assert answer.json()["session"]["status"] == SessionStatus.PENDING
    assert signed_in(make_user("colleague", ward=ward)).get(url).status_code == 404, "another person's key answered"
    assert signed_in(make_user("viewer", ward=ward, can_command=False)).get(url).status_code == 403
    assert Client().get(url).status_code == 401
