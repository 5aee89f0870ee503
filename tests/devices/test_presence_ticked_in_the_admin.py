"""A pump's "has presence" ticked or unticked in the admin does not make its earlier `online` vouch for it (review 46,
M2).

A pump without presence (the original firmware: no Last Will) says a plain `online`; its presence is stored `online`,
which says nothing while it is without presence (it reads "Stale" a heartbeat after it falls silent). Ticked "has
presence" afterwards, that stored `online` made it "Online · Connected" on the monitor and the overview for as long
as it stayed silent: nothing would ever come to say otherwise, it has no Will. Now turning presence on or off takes
an `online` presence back to not vouched for (`unknown`, as after a broker restart): "Stale" by its last heard, on
every screen at once (the edit's `device:status`) or, heard a moment before, when it turns stale (the bridge's
housekeeping announces it), until the pump says `online` live again. The screens: tests/browser/test_presence_ticked.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import payloads
from devices.models import ChangeLogEntry, Device, DeviceEvent
from devices.states import Connectivity, Presence
from protocol import events
from protocol.payload_codec import payload_to_wire
from realtime.bridge.housekeeping import Housekeeping
from tests.devices.test_admin_pump_edit import opened_form
from tests.factories import make_device, make_ward
from tests.support.ingest import send

pytestmark = pytest.mark.django_db

SILENT_S = 60.0


def tick(admin_client, device_id: str, on: bool) -> Device:
    """The administrator's edit of the pump's "Announces itself with a retained online status and a Last Will"."""
    device = Device.objects.get(device_id=device_id)
    form = opened_form(admin_client, device)  # as the page was rendered: its initial values come back with it
    form.pop("has_presence", None)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/",
                                 {**form, **({"has_presence": "on"} if on else {})})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    return Device.objects.get(device_id=device_id)


def said_online(device_id: str, capture, *, has_presence: bool, at_s: float = -SILENT_S) -> Device:
    """A pump that said `online` live `at_s` seconds from now, paused, and nothing since."""
    make_device(device_id, ward=make_ward(device_id.lower()), has_presence=has_presence)
    send(capture, device_id, "status", {"status": "online"}, at_s - 1)
    send(capture, device_id, "status", {"status": "paused"}, at_s)
    return Device.objects.get(device_id=device_id)


def last_status_told(device: Device) -> dict:
    entry = ChangeLogEntry.objects.filter(device=device, event=events.DEVICE_STATUS).order_by("-seq").first()
    return entry.body["status"]


def test_a_silent_pump_without_presence_ticked_has_presence_stays_stale(
    admin_client, django_capture_on_commit_callbacks
):
    device = said_online("TICK_ON", django_capture_on_commit_callbacks, has_presence=False)
    assert (device.presence, device.connectivity()) == (Presence.ONLINE, Connectivity.STALE), "precondition"

    ticked = tick(admin_client, "TICK_ON", on=True)
    assert ticked.connectivity() == Connectivity.STALE, (
        f"a pump silent {SILENT_S:.0f} s, whose `online` had no Last Will behind it, reads {ticked.connectivity()} "
        "once 'has presence' is ticked: nothing will ever say it went"
    )
    assert ticked.presence == Presence.UNKNOWN, "its presence is not vouched for until it says online live"
    told = last_status_told(ticked)
    assert (told["connectivity"], told["hasPresence"]) == ("stale", True), f"the screens were told {told}"
    assert ChangeLogEntry.objects.filter(device=ticked).order_by("-seq").first().body == payload_to_wire(
        payloads.status_body(ticked)
    ), "snapshot + events = a fresh snapshot"
    audit = DeviceEvent.objects.filter(device=ticked, kind="user.pump_edited").first()
    assert audit.payload["changes"]["presence"] == {"from": "online", "to": "unknown"}, audit.payload

    send(django_capture_on_commit_callbacks, "TICK_ON", "status", {"status": "online"})  # it connects, its Will set
    back = Device.objects.get(device_id="TICK_ON")
    assert (back.presence, back.connectivity(now=timezone.now() + timedelta(seconds=SILENT_S))) == (
        Presence.ONLINE, Connectivity.ONLINE,
    ), "its live online, said with presence, vouches for it again"  # fmt: skip


def test_a_pump_with_presence_unticked_and_ticked_again_stays_stale(admin_client, django_capture_on_commit_callbacks):
    """The reverse: online by its presence, silent while paused (normal for it), then unticked: "Stale" by its
    silence, as any pump without presence. Ticked again, its old `online` said under the other setting vouches for
    nothing: before, it read "Online" again."""
    device = said_online("TICK_OFF", django_capture_on_commit_callbacks, has_presence=True)
    assert device.connectivity() == Connectivity.ONLINE, "precondition: online by its presence"
    unticked = tick(admin_client, "TICK_OFF", on=False)
    assert (unticked.connectivity(), last_status_told(unticked)["connectivity"]) == ("stale", "stale")
    assert unticked.presence == Presence.UNKNOWN
    ticked = tick(admin_client, "TICK_OFF", on=True)
    assert (ticked.connectivity(), last_status_told(ticked)["connectivity"]) == ("stale", "stale"), (
        f"unticked and ticked again, a pump silent {SILENT_S:.0f} s reads {ticked.connectivity()}"
    )


def test_an_edit_of_anything_else_leaves_presence_alone(admin_client, django_capture_on_commit_callbacks):
    said_online("TICK_BED", django_capture_on_commit_callbacks, has_presence=True)
    device = Device.objects.get(device_id="TICK_BED")
    form = {**opened_form(admin_client, device), "bed": "12"}
    assert admin_client.post(f"/admin/devices/device/{device.pk}/change/", form).status_code == 302
    edited = Device.objects.get(device_id="TICK_BED")
    assert (edited.bed, edited.presence, edited.connectivity()) == ("12", Presence.ONLINE, Connectivity.ONLINE)


def test_a_pump_ticked_a_moment_after_it_was_heard_is_told_stale_when_it_turns_stale(
    admin_client, django_capture_on_commit_callbacks, settings
):
    """Heard 1 s before the tick, it reads online then; the screens take a pump with presence at the server's word, so
    the bridge's housekeeping tells them when it turns stale, as for a pump without presence."""
    housekeeping = Housekeeping()
    housekeeping.stale_pumps(timezone.now())  # at its start: only remembers
    said_online("TICK_FRESH", django_capture_on_commit_callbacks, has_presence=False, at_s=-1.0)
    ticked = tick(admin_client, "TICK_FRESH", on=True)
    assert last_status_told(ticked)["connectivity"] == "online", "precondition: heard a second ago"
    later = timezone.now() + timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1)
    housekeeping.stale_pumps(later)
    told = last_status_told(Device.objects.get(device_id="TICK_FRESH"))
    assert told["connectivity"] == "stale", f"silent past the heartbeat, its screens were last told {told}"


def test_the_editor_is_told_the_ticked_pump_reads_stale_until_it_next_connects(
    admin_client, django_capture_on_commit_callbacks
):
    """An idle pump that truly has a Will says nothing until it next connects: ticked, it reads Stale for hours, and
    the editor was not told why nor what to do (review 47, L1)."""
    from django.contrib.messages import get_messages

    device = said_online("TICK_TOLD", django_capture_on_commit_callbacks, has_presence=False)
    form = opened_form(admin_client, device)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**form, "has_presence": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("reads Stale until it next connects" in text and "Reconnect it" in text for text in said), said
