"""A normal end at a high rate whose final progress was lost is completed, not interrupted (review 45): the pump's
last progress, a second before its end at 999 mL/h, said 0.28 mL remained; its final progress (QoS 0 on the original
firmware) was lost, and its `completed` status ended the session `interrupted` with a high `infusion_interrupted`.

Through the real Mosquitto and `manage.py run_mqtt_bridge` (the clinical folder's fixtures); the unit tests of the
rule are tests/devices/test_completion_after_a_lost_final_progress.py.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.states import AlarmState, SessionStatus
from tests.clinical.scenario import all_applied, confirmed_run
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # orders wait for the tests, never for the 6 s time-out
BOOT = "boot-r45"
RATE = 999 / 60  # mL/min: the highest rate an order may have


def test_a_normal_end_at_999_ml_h_whose_final_progress_was_lost_is_completed(clinical_bridge, clinical_pump):
    """A pump with `bootId`/`seq` and ISO timestamps runs a 30 mL order at 999 mL/h (confirmed, read-back `match`);
    its progress a second before the end says 29.72 mL given, 0.28 mL left; then it says `completed`.

    On main the session ends `interrupted` ("the pump reports completed with 29.72 of 30 mL given (0.28 mL left)")
    with a high `infusion_interrupted`: a false alarm, and a record that says the order was not given."""
    pump = clinical_pump("R45_FAST")
    session = confirmed_run(pump, "R45_FAST", boot=BOOT, flow_rate_ml_min=RATE, planned_time_min=30 / RATE)
    sent = timezone.now()
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 29.72,
                              "volumeRemainingMl": 0.28, "progressPercent": 99.07, "flowRate": RATE,
                              "timestamp": sent.isoformat(), "bootId": BOOT, "seq": 3})  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("volumeRemainingMl") == 0.28,
               message="the progress at 0.28 mL left never arrived")  # fmt: skip
    time.sleep(1.0)  # the pump's last second: its final progress (nothing remaining) is lost, not published
    pump.publish("status", {"status": "completed", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 4,
                            "timestamp": (sent + timedelta(seconds=1)).isoformat()})  # fmt: skip
    wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status != SessionStatus.RUNNING,
               message="the completed status moved nothing")  # fmt: skip
    all_applied(pump, "R45_FAST", seq=5, boot=BOOT)
    ended = InfusionSession.objects.get(pk=session.pk)
    alarms = list(
        Alarm.objects.filter(device__device_id="R45_FAST", state=AlarmState.ACTIVE).values_list("type", "message")
    )
    assert (ended.status, alarms) == (SessionStatus.COMPLETED, []), (
        f"a normal end at 999 mL/h, its final progress lost, ended {ended.status!r} with {alarms}"
    )
