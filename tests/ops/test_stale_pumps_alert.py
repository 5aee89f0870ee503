"""The "Stale pumps" alert fires for a pump that should be reporting and is not, never for a pump quiet by design
(review 30, finding 3): the original firmware publishes nothing while idle and has no presence, so an idle one reads
"Stale" on every screen for ever, and `PumpStreamPumpsStale` (`pumpstream_pumps{connectivity="stale"} > 0`) paged
permanently in any hospital with one."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone
from prometheus_client import generate_latest

from devices.models import Device, InfusionSession
from devices.states import SessionStatus
from pumpstream.ops_metrics import DOMAIN, refresh_domain_gauges
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
LONG_AGO = timedelta(minutes=10)


def alerted_series() -> str:
    """The one series `PumpStreamPumpsStale` compares with 0 (`series > 0`)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    expression = next(rule["expr"] for group in groups for rule in group["rules"]
                      if rule.get("alert") == "PumpStreamPumpsStale")  # fmt: skip
    shape = re.fullmatch(r"\s*(\w+\{[^}]*\})\s*>\s*0\s*", expression)
    assert shape, f"PumpStreamPumpsStale changed shape ({expression!r}): this test reads `series > 0`"
    return shape.group(1)


def scraped(series: str) -> float:
    refresh_domain_gauges()
    lines = generate_latest(DOMAIN).decode().splitlines()
    return next(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(series + " "))


def unheard_for_long(device_id: str, **fields) -> Device:
    device = make_device(device_id, ward=make_ward("icu"), **fields)
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - LONG_AGO)
    return device


def test_an_idle_pump_of_the_original_firmware_fires_no_stale_alert_and_is_counted_quiet():
    unheard_for_long("LEGACY_IDLE", has_presence=False)
    assert scraped(alerted_series()) == 0, (
        "an idle original-firmware pump (it publishes nothing while idle: 'Stale' on screen by design) fires "
        "PumpStreamPumpsStale, which then never clears"
    )
    assert scraped('pumpstream_pumps{connectivity="quiet"}') == 1, "the quiet pump is not counted apart"


@pytest.mark.parametrize("status", [SessionStatus.PENDING, SessionStatus.RUNNING, SessionStatus.PAUSED])
def test_a_pump_of_the_original_firmware_with_an_infusion_on_unheard_fires_it(status):
    device = unheard_for_long("LEGACY_IN_USE", has_presence=False)
    InfusionSession.objects.create(device=device, flow_rate_ml_min=1, planned_volume_ml=50, planned_time_min=50,
                                   status=status)  # fmt: skip
    assert scraped(alerted_series()) == 1, f"a pump with an infusion {status}, unheard for 10 min, fires no alert"
    assert scraped('pumpstream_pumps{connectivity="quiet"}') == 0


def test_a_pump_with_presence_unheard_and_its_presence_never_told_fires_it():
    unheard_for_long("MODERN_UNTOLD", has_presence=True)
    assert scraped(alerted_series()) == 1, "a pump with presence reading Stale fires no alert"


def test_the_pumps_are_all_counted_once():
    unheard_for_long("LEGACY_IDLE", has_presence=False)
    unheard_for_long("MODERN_UNTOLD", has_presence=True)
    make_device("NEVER_HEARD", ward=make_ward("icu"))
    counts = {state: scraped(f'pumpstream_pumps{{connectivity="{state}"}}')
              for state in ("online", "stale", "quiet", "offline", "unknown")}  # fmt: skip
    assert counts == {"online": 0, "stale": 1, "quiet": 1, "offline": 0, "unknown": 1}
