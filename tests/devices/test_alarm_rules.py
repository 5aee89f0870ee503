"""Unit tests of the alarm rules (contract v1.1): key derivation, odd forms, repeats, re-alerts, reminders, resolve."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, DeviceEvent
from devices.services.alarm_keys import alarm_type_key
from devices.services.alarm_rules import alarm_resolve, alarms_remind
from devices.services.alarms import alarm_acknowledge, alarm_clear, alarm_raise
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource, AlarmState
from protocol import events
from protocol.schemas import ErrorPayload
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import send

pytestmark = pytest.mark.django_db(transaction=True)

HIGH, MEDIUM, LOW = AlarmPriority.HIGH, AlarmPriority.MEDIUM, AlarmPriority.LOW


def notifications(emitted) -> list[dict]:
    return [change.body["notification"] for change in emitted if change.event == events.DEVICE_NOTIFICATION]


def raise_(type="occlusion", priority=HIGH, source=AlarmSource.DEVICE, session=None, now=None, **fields) -> Alarm:
    with transaction.atomic():
        device = device_lock(device_id="PUMP_0001")
        return alarm_raise(device=device, type=type, priority=priority, source=source, session=session, now=now,
                           **fields)  # fmt: skip


@pytest.mark.parametrize(
    ("reported", "key"),
    [("Occlusion Detected (downstream)", "occlusion_detected__downstream_"), ("bubble_detected", "bubble_detected"),
     ("Überdruck ⚠", "überdruck_⚠"), ("door-open.v2", "door_open_v2"), ("", "device_error"), ("A" * 100, "a" * 64),
     ("42", "42")],
)  # fmt: skip
def test_type_key_is_lower_case_with_every_other_character_an_underscore(reported, key):  # letters of any script kept
    assert alarm_type_key(reported) == key


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"type": "Occlusion Detected (downstream)", "severity": "HIGH"}, {"type": "Occlusion Detected (downstream)"}),
     ({"type": 42, "errorCode": 7}, {"type": "42", "errorCode": "7"}),
     ({"errorCode": "E-17", "severity": 3}, {"type": "device_error", "errorCode": "E-17", "severity": "3"}),
     ({"type": "x", "message": "m" * 2000, "errorCode": "c" * 100}, {"message": "m" * 500, "errorCode": "c" * 64}),
     ({"type": "x", "details": "just text"}, {"details": {"value": "just text"}}),
     ({"type": "x", "details": {"a": {"b": [1, {"c": 2}]}}}, {"details": {"a": {"b": [1, {"c": 2}]}}}),
     ({"type": "x", "message": {"text": "nested"}}, {"message": '{"text": "nested"}'}),
     ({}, {"type": "device_error", "severity": None}), ({"type": "   "}, {"type": "device_error"})],
)  # fmt: skip
def test_error_payload_accepts_every_readable_form(payload, expected):
    parsed = ErrorPayload.model_validate(payload)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, f"{name} of {payload!r}"


def test_a_repeat_of_an_active_alarm_only_counts(emitted):
    make_device()
    for _ in range(3):
        alarm = raise_()
    assert alarm.count == 3 and alarm.alerts == 1
    assert len(notifications(emitted)) == 1, "a repeat must not notify again"


def test_another_condition_under_the_same_key_is_shown_as_sent_and_alerts_again(emitted):
    """The contract's key turns `>` and `<` into `_`: "Flow > max" (too high) and "Flow < max" (too low) share
    `flow___max`. The second was counted as a repeat: the screen kept saying "Flow > max", acknowledged and quiet,
    while the pump said the opposite."""
    make_device()
    user = make_user()
    high = raise_(type="Flow > max")
    alarm_acknowledge(alarm_id=high.pk, user=user)
    low = raise_(type="Flow < max")
    assert low.pk == high.pk and low.type == "flow___max", "one alarm of the contract's key (its clearing clears it)"
    assert low.type_shown == "Flow < max", "the screen shows what the pump says now"
    assert low.acknowledged_at is None and low.alerts == 2 and len(notifications(emitted)) == 2
    assert notifications(emitted)[-1]["title"] == "Flow < max"


def test_a_pump_flapping_between_two_wordings_re_alerts_once_for_the_second_not_at_every_message(emitted):
    """A sensor at the limit sends "Flow > max", "Flow < max", ... every 2 s: each was news at every message, so an
    acknowledgement held only until the next one (review 21). The wordings shown since the alarm was raised are
    remembered: the second alerts once, the flapping afterwards only shows the text the pump sends."""
    make_device()
    nurse = make_user()
    start = timezone.now()
    alarm = raise_("Flow > max", now=start)
    alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    shown = []
    for n in range(1, 11):
        alarm = raise_("Flow < max" if n % 2 else "Flow > max", now=start + timedelta(seconds=2 * n))
        shown.append(alarm.type_shown)
        alarm = alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    assert alarm.alerts == 2 and len(notifications(emitted)) == 2, alarm.alerts
    assert shown[-2:] == ["Flow < max", "Flow > max"], "the text shown follows the pump"


@pytest.mark.parametrize("spelling", ["OCCLUSION DETECTED", "occlusion_detected", "Occlusion-detected"])
def test_the_same_condition_spelled_otherwise_is_a_repeat(emitted, spelling):
    make_device()
    raise_(type="Occlusion detected")
    repeated = raise_(type=spelling)
    assert repeated.count == 2 and repeated.alerts == 1 and len(notifications(emitted)) == 1
    assert repeated.type_shown == "Occlusion detected"


def test_alarm_raised_after_clearing_is_a_new_alarm_that_alerts(emitted):
    device = make_device()
    first = raise_()
    with transaction.atomic():
        alarm_clear(device=device_lock(device_id=device.device_id), types=["occlusion"])
    second = raise_()
    assert second.pk != first.pk and second.count == 1
    assert len(notifications(emitted)) == 2


def test_a_repeat_at_higher_priority_alerts_again_unacknowledged(emitted):
    make_device()
    user = make_user()
    alarm = raise_(priority=MEDIUM)
    alarm_acknowledge(alarm_id=alarm.pk, user=user)
    repeated = raise_(priority=MEDIUM)
    assert repeated.acknowledged_at is not None, "a repeat at the same priority keeps the acknowledgement"
    louder = raise_(priority=HIGH)
    assert louder.pk == alarm.pk and louder.priority == HIGH and louder.acknowledged_at is None
    assert louder.alerts == 2 and len(notifications(emitted)) == 2
    quieter = raise_(priority=LOW)
    assert quieter.priority == HIGH, "a repeat at a lower priority never lowers it"


def test_same_type_and_code_in_a_new_session_is_a_new_alarm():
    device = make_device()
    first = infusion_start(device_id="PUMP_0001", order=make_order())
    before = raise_(session=first)
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device.device_id), infusion_id=first.infusion_id,
                         confirmed=False, parameters=None, confirmation={})  # fmt: skip
    second = infusion_start(device_id="PUMP_0001", order=make_order())
    after = raise_(session=second)
    assert after.pk != before.pk and after.session == second and after.count == 1
    assert Alarm.objects.filter(type="occlusion", state=AlarmState.ACTIVE).count() == 2, (
        "a device alarm of the first session stays until the pump clears it"
    )


@pytest.mark.parametrize(("priority", "seconds", "reminded"),
                         [(HIGH, 299, False), (HIGH, 301, True), (MEDIUM, 899, False), (MEDIUM, 901, True),
                          (LOW, 10_000, False)])  # fmt: skip
def test_an_acknowledged_alarm_still_active_past_the_reminder_interval_alerts_again(
    emitted, priority, seconds, reminded
):
    make_device()
    alarm = raise_(priority=priority)
    acknowledged_at = timezone.now()
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user(), now=acknowledged_at)
    assert alarms_remind(now=acknowledged_at + timedelta(seconds=seconds)) == int(reminded)
    alarm.refresh_from_db()
    assert (alarm.acknowledged_at is None) is reminded
    assert len(notifications(emitted)) == 1 + int(reminded)
    if reminded:
        assert DeviceEvent.objects.filter(kind="alarm.reminded").exists()
        assert notifications(emitted)[-1]["id"] == f"alarm-{alarm.pk}-2", "a reminder is a new notification"


def resolver():
    user = make_user("charge")
    user.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    return user


def test_resolve_clears_with_reason_and_note_audited_and_emitted(emitted):
    make_device()
    alarm = raise_(type="parameter_mismatch", source=AlarmSource.SERVER)
    user = resolver()
    resolved = alarm_resolve(alarm_id=alarm.pk, user=user, reason="checked_at_pump", note="rate reprogrammed", alerts=1)
    assert resolved.state == AlarmState.CLEARED and resolved.resolved_by == user
    event = DeviceEvent.objects.get(kind="user.alarm_resolved")
    assert event.user == user and event.payload["reason"] == "checked_at_pump"
    body = emitted[-1].body["alarm"]
    assert body["state"] == "cleared" and body["resolved"]["by"] == "charge"
    assert body["resolved"]["reason"] == "checked_at_pump" and body["resolved"]["note"] == "rate reprogrammed"


def test_a_resolve_note_is_kept_without_a_direction_override(emitted):
    """The note reaches every watcher (`resolved.note`) to be shown beside the server's words (review 39)."""
    make_device()
    alarm = raise_(type="parameter_mismatch", source=AlarmSource.SERVER)
    alarm_resolve(alarm_id=alarm.pk, user=resolver(), reason="other", note=" rate reprogrammed\u202e ", alerts=1)
    assert emitted[-1].body["alarm"]["resolved"]["note"] == "rate reprogrammed"


@pytest.mark.parametrize(
    ("reason", "note"),
    [("", ""), ("bogus", "x"), ("other", " "), ("false_alarm", ""), ("other", "\u200b\u2060"), ("other", "\u202e")],
)
def test_resolve_needs_a_coded_reason_and_a_note_when_other(reason, note):
    make_device()
    alarm = raise_()
    with pytest.raises(PumpStreamError) as refused:
        alarm_resolve(alarm_id=alarm.pk, user=resolver(), reason=reason, note=note, alerts=1)
    assert refused.value.code == "invalid_reason"
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.ACTIVE


def test_resolving_a_cleared_alarm_is_refused():
    make_device()
    alarm = raise_()
    alarm_resolve(alarm_id=alarm.pk, user=resolver(), reason="checked_at_pump", alerts=1)
    with pytest.raises(PumpStreamError) as refused:
        alarm_resolve(alarm_id=alarm.pk, user=make_user("other"), reason="checked_at_pump", alerts=1)
    assert refused.value.code == "alarm_not_active"


def test_device_clear_never_clears_a_server_alarm():
    device = make_device()
    server = raise_(type="infusing_without_order", source=AlarmSource.SERVER)
    with transaction.atomic():
        alarm_clear(device=device_lock(device_id=device.device_id), types=["infusing_without_order"],
                    source=AlarmSource.DEVICE)  # fmt: skip
    server.refresh_from_db()
    assert server.state == AlarmState.ACTIVE


def test_resolve_endpoint_needs_the_permission_and_answers_the_resolved_alarm(client):
    device = make_device()
    alarm = raise_(type="unreadable_alarm", source=AlarmSource.SERVER)
    client.force_login(make_user("plain", ward=device.ward))
    url = f"/api/alarms/{alarm.pk}/resolve/"
    payload = {"reason": "checked_at_pump", "note": "screen shows occlusion cleared", "alerts": alarm.alerts}
    assert client.post(url, payload, content_type="application/json").status_code == 403
    charge = resolver()
    device.ward.members.add(charge)
    client.force_login(charge)
    refused = client.post(url, {"reason": "other", "alerts": alarm.alerts}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["field"] == "note"
    answer = client.post(url, payload, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["alarm"]["resolved"]["reason"] == "checked_at_pump"
    assert client.post(url, payload, content_type="application/json").status_code == 409, "already resolved"


def test_admin_action_resolves_with_the_reason_and_note_it_was_given(admin_client):
    make_device()
    alarm = raise_(type="confirmed_late", source=AlarmSource.SERVER)
    form = {"action": "resolve", "_selected_action": [alarm.pk], "reason": "other", "note": "",
            f"shown_alerts_{alarm.pk}": alarm.alerts}  # the alert the list showed  # fmt: skip
    admin_client.post("/admin/devices/alarm/", form)
    assert Alarm.objects.get(pk=alarm.pk).state == AlarmState.ACTIVE, "other without a note must be refused"
    admin_client.post("/admin/devices/alarm/", {**form, "note": "pump swapped at bed 4"})
    resolved = Alarm.objects.get(pk=alarm.pk)
    assert resolved.state == AlarmState.CLEARED and resolved.resolved_note == "pump swapped at bed 4"
    assert DeviceEvent.objects.get(kind="user.alarm_resolved").user.username == "admin"


def test_a_stale_resolve_does_not_clear_a_newer_higher_alert(client):
    """Review 3: a nurse opens Resolve on a medium alert; the pump re-raises it at HIGH while she types the note.
    Her resolve, for the alert she saw, must not clear the high one nobody saw (its sound and escalation)."""
    device = make_device()
    shown = raise_(priority=MEDIUM, message="Pressure rising")  # the page shows medium, alert 1
    raise_(priority=HIGH, message="Occlusion: line blocked")  # re-raised at high: alert 2, sounding
    charge = resolver()
    device.ward.members.add(charge)
    client.force_login(charge)
    answer = client.post(f"/api/alarms/{shown.pk}/resolve/",
                         {"reason": "false_alarm", "note": "sensor noise", "alerts": shown.alerts},
                         content_type="application/json")  # fmt: skip
    alarm = Alarm.objects.get(pk=shown.pk)
    assert alarm.state == AlarmState.ACTIVE, (
        f"a resolve sent for the medium alert the page showed cleared the HIGH re-alert nobody saw (answer "
        f"{answer.status_code}, alarm now {alarm.state}, {alarm.priority}): its sound and escalation ended"
    )
    assert answer.status_code == 409 and answer.json()["code"] == "alarm_changed"
    missing = client.post(f"/api/alarms/{shown.pk}/resolve/", {"reason": "checked_at_pump"},
                          content_type="application/json")  # fmt: skip
    assert missing.status_code == 400 and missing.json()["field"] == "alerts", "resolve must name the alert shown"
    assert client.post(f"/api/alarms/{shown.pk}/resolve/", {"reason": "checked_at_pump", "alerts": 2},
                       content_type="application/json").status_code == 200, "the alert seen is resolved"  # fmt: skip


def test_the_admin_action_refuses_an_alarm_that_alerted_again_since_the_list_showed_it(admin_client):
    make_device()
    alarm = raise_(priority=MEDIUM)
    listed = admin_client.get("/admin/devices/alarm/").content.decode()
    assert f'name="shown_alerts_{alarm.pk}" value="1"' in listed, "the list must carry the alert it shows"
    raise_(priority=HIGH)  # alert 2, after the list was shown
    form = {"action": "resolve", "_selected_action": [alarm.pk], "reason": "checked_at_pump", "note": "",
            f"shown_alerts_{alarm.pk}": 1}  # fmt: skip
    admin_client.post("/admin/devices/alarm/", form)
    assert Alarm.objects.get(pk=alarm.pk).state == AlarmState.ACTIVE, "the admin cleared a high alert nobody saw"
    admin_client.post("/admin/devices/alarm/", {k: v for k, v in form.items() if not k.startswith("shown_")})
    assert Alarm.objects.get(pk=alarm.pk).state == AlarmState.ACTIVE, "an alarm not listed must not be resolved"
    admin_client.post("/admin/devices/alarm/", {**form, f"shown_alerts_{alarm.pk}": 2})
    assert Alarm.objects.get(pk=alarm.pk).state == AlarmState.CLEARED


@pytest.mark.parametrize("alerts", ["\u00b2", "1" * 5000], ids=["superscript-two", "5000-digits"])
@pytest.mark.parametrize("action", ["resolve", "acknowledge"])
def test_odd_digit_strings_for_alerts_are_refused_not_a_server_error(client, alerts, action):
    """Review 6: `str.isdigit` takes "²" and 5,000 digits, which `int` refuses: a 500 with a traceback."""
    device = make_device()
    alarm = raise_()
    charge = resolver()
    device.ward.members.add(charge)
    client.force_login(charge)
    client.raise_request_exception = False
    answer = client.post(f"/api/alarms/{alarm.pk}/{action}/", {"reason": "checked_at_pump", "alerts": alerts})
    assert answer.status_code == 400 and answer.json()["field"] == "alerts", f"{action}: {answer.status_code}"


@pytest.mark.parametrize("alarm_type", ["Occlusion not cleared", "Alarm could not be cleared", "Line-not-cleared"])
def test_an_alarm_saying_not_cleared_is_raised_not_taken_for_a_clearing(django_capture_on_commit_callbacks, alarm_type):
    """Review 15, finding 4: by its key "Occlusion not cleared" is the clearing of `occlusion_not`, which nothing
    raised: it cleared nothing and vanished (no alarm, no dead letter). A clearing that clears nothing and is not
    literally `X_cleared` is raised as the alarm it says it is (when in doubt, alarm)."""
    make_device("NOTCLR")
    send(django_capture_on_commit_callbacks, "NOTCLR", "error",
         {"type": alarm_type, "severity": "high", "message": "Downstream occlusion persists"})  # fmt: skip
    active = list(Alarm.objects.filter(device__device_id="NOTCLR", state=AlarmState.ACTIVE)
                  .values_list("type_reported", "priority", "message"))  # fmt: skip
    assert active == [(alarm_type, HIGH, "Downstream occlusion persists")], (
        f"the pump's high alarm {alarm_type!r} was taken for a clearing of an alarm never raised: active {active}"
    )


def test_a_clearing_in_free_text_that_clears_its_alarm_is_a_clearing_and_raises_nothing(
    django_capture_on_commit_callbacks,
):
    make_device("FREECLR")
    for n, body in enumerate(({"type": "Occlusion", "severity": "high"}, {"type": "Occlusion cleared"})):
        send(django_capture_on_commit_callbacks, "FREECLR", "error", body, n)
    assert not Alarm.objects.filter(device__device_id="FREECLR", state=AlarmState.ACTIVE).exists(), (
        "'Occlusion cleared' cleared the pump's active occlusion: it is a clearing, no alarm of its own"
    )
    send(django_capture_on_commit_callbacks, "FREECLR", "error", {"type": "Occlusion cleared"}, 2)
    alarms = Alarm.objects.filter(device__device_id="FREECLR", state=AlarmState.ACTIVE)
    active = list(alarms.values_list("type_reported", flat=True))
    assert active == ["Occlusion cleared"], (
        f"a free-text 'clearing' with nothing left to clear is not the contract's X_cleared: when in doubt, alarm "
        f"({active})"
    )


def test_a_literal_clearing_that_clears_nothing_raises_nothing_and_is_in_the_pumps_log(
    django_capture_on_commit_callbacks,
):
    """The contract's `X_cleared` with no `X` active (already resolved by a nurse, shed in a flood, a code that does
    not match) is no alarm, but it is written down where the monitor's event log shows it."""
    from devices.views.event_log import event_text

    make_device("LITCLR")
    send(django_capture_on_commit_callbacks, "LITCLR", "error", {"type": "Occlusion_Cleared", "errorCode": 7})
    assert not Alarm.objects.filter(device__device_id="LITCLR").exists(), "the contract's X_cleared is no alarm"
    unmatched = DeviceEvent.objects.filter(device__device_id="LITCLR", kind="alarm.clearing_unmatched").first()
    assert unmatched is not None, "a clearing that cleared nothing must be recorded as such in the pump's log"
    assert unmatched.payload["keys"] == ["occlusion", "occlusion_detected"] and unmatched.payload["errorCode"] == "7"
    assert event_text(unmatched) == "The pump cleared occlusion, which was not active", event_text(unmatched)
