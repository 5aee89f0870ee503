"""What a freshly opened monitor starts from (`presenters.monitor_state`): a new pending order shows no progress
(it showed the previous infusion's final 30 mL / 100 % under the new order's id, a reviewer's finding; live pages
and the Socket.IO snapshot showed none); an ended infusion its own final progress; a pump infusing after it
ended its progress under no infusion."""

import pytest

from devices.models import Device
from devices.services.sessions import infusion_start
from devices.views.presenters import monitor_state
from protocol import events
from realtime.sio.snapshot import read_snapshot
from tests.factories import make_device, make_order
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def completed(capture) -> str:
    """F5's infusion confirmed, run to its end (30 mL, 100 %) and completed; its id."""
    make_device("F5")
    first = confirmed_order("F5")
    final = {"status": "completed", "infusionId": first.infusion_id, "flowRate": 2.0, "deliveredVolumeMl": 30.0,
             "volumeRemainingMl": 0, "progressPercent": 100}  # fmt: skip
    ingest([report("F5", "progress", final), report("F5", "completion", {"completed": True,
            "infusionId": first.infusion_id}, 0.1)], capture)  # fmt: skip
    return first.infusion_id


def test_a_new_pending_order_does_not_show_the_last_infusions_final_progress(django_capture_on_commit_callbacks):
    completed(django_capture_on_commit_callbacks)
    second = infusion_start(device_id="F5", order=make_order(drug="Heparin"))
    page = monitor_state(Device.objects.get(device_id="F5"))
    snapshot = [c.body for c in read_snapshot("F5").changes if c.event == events.DEVICE_PROGRESS]
    assert page["session"]["infusionId"] == second.infusion_id
    assert page["progress"] is None, (
        f"a freshly opened monitor shows the pending Heparin order {second.infusion_id} already "
        f"{page['progress'].get('progressPercent')} % delivered ({page['progress'].get('deliveredVolumeMl')} mL, "
        f"labelled infusionId={page['progress'].get('infusionId')}): the previous infusion's final progress. "
        f"The Socket.IO snapshot shows {len(snapshot)} progress event(s) and a live page cleared it."
    )


def test_an_ended_infusion_shows_its_final_progress_and_later_progress_shows_under_no_order(
    django_capture_on_commit_callbacks,
):
    first = completed(django_capture_on_commit_callbacks)
    page = monitor_state(Device.objects.get(device_id="F5"))
    assert page["session"]["infusionId"] == first
    assert (page["progress"]["infusionId"], page["progress"]["deliveredVolumeMl"]) == (first, 30.0)
    ingest([report("F5", "progress", {"status": "running", "deliveredVolumeMl": 1.0}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    page = monitor_state(Device.objects.get(device_id="F5"))
    assert (page["progress"]["infusionId"], page["progress"]["deliveredVolumeMl"]) == (None, 1.0)
