"""Which principals a change of rights names in its nudge (`realtime/rights_signals.py`), unit level."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from devices.services.accounts import service_account_create, service_account_revoke
from devices.services.registration import pump_registration_save
from realtime import rights_signals
from realtime.cluster import EVERYONE, RECHECK
from realtime.sio.auth import session_hash
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


@pytest.fixture
def nudges(monkeypatch) -> list:
    sent: list = []
    monkeypatch.setattr(rights_signals, "nudge_on_commit", lambda kind, names: sent.append((kind, sorted(names))))
    rights_signals.rights_signals_connect()
    return sent


def test_a_deleted_live_session_is_named_and_an_expired_one_is_not(nudges):
    now = timezone.now()
    live = Session.objects.create(session_key="live-key", session_data="", expire_date=now + timedelta(hours=1))
    Session.objects.create(session_key="old-key", session_data="", expire_date=now - timedelta(hours=1))
    Session.objects.all().delete()
    assert nudges == [(RECHECK, [f"session:{session_hash(live.session_key)}"])]


def test_a_user_saved_is_named_but_not_for_a_sign_ins_last_login(nudges):
    nurse = make_user("nurse")
    nudges.clear()
    nurse.last_login = timezone.now()
    nurse.save(update_fields=["last_login"])
    assert nudges == []
    nurse.is_active = False
    nurse.save(update_fields=["is_active"])
    assert nudges == [(RECHECK, [f"user:{nurse.pk}"])]


def test_ward_membership_names_the_members_from_either_side(nudges):
    icu = make_ward("icu")
    nurse, other = make_user("nurse", ward=icu), make_user("other", ward=icu)
    nudges.clear()
    icu.members.remove(nurse, other)
    other.wards.add(icu)
    icu.members.clear()
    assert nudges == [(RECHECK, sorted([f"user:{nurse.pk}", f"user:{other.pk}"])), (RECHECK, [f"user:{other.pk}"]),
                      (RECHECK, [EVERYONE])]  # fmt: skip


def test_a_revoked_service_account_is_named(nudges):
    account, _ = service_account_create(name="monitor")
    nudges.clear()
    service_account_revoke(account=account)
    assert nudges == [(RECHECK, [f"account:{account.pk}"])]


def test_a_pump_moved_to_another_ward_names_everyone_and_another_edit_no_one(nudges):
    """The old ward's nurses may no longer watch it: their sockets are re-checked at once, not at the next round."""
    pump = make_device("PUMP_MOVED", ward=make_ward("icu"), bed="1")
    other = make_ward("er")
    nudges.clear()
    pump.bed = "2"
    pump_registration_save(device=pump, fields=["bed"])
    assert nudges == [], "a bed changed: no one's rights did"
    pump.ward = other
    pump_registration_save(device=pump, fields=["ward"])
    assert nudges == [(RECHECK, [EVERYONE])], f"a pump moved to another ward re-checked no socket's rights: {nudges}"
