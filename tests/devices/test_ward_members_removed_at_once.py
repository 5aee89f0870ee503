"""A ward's two last watchers removed at once from two shells: one removal is refused, the ward stays watched.

The models' guard (`watchers.membership_removal_guard`) reads the ward's members inside the removal's transaction with
the ward's row locked to its end: a second removal waits for the first and then sees it. Without the lock held, on
PostgreSQL each read the other nurse as still a member (not yet committed) and both went through: the infusing pump
with a HIGH alarm watched by no one. On SQLite the IMMEDIATE transactions are serial and the test passes either way;
the race is PostgreSQL's (`-p tests.support.postgres`).
"""

import pytest
from django.db import connection, transaction

from devices.access_selectors import ward_is_watched
from tests.devices.test_ward_left_unwatched_by_any_code import _ward_with_a_pump_in_use
from tests.factories import make_user
from tests.support.pg_locks import in_another_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_removals_of_a_wards_two_last_watchers_do_not_both_pass():
    ward, nurse = _ward_with_a_pump_in_use()
    second = make_user("ward-b-second", ward=ward)
    other_shell, outcome = in_another_session(lambda: ward.members.remove(second))
    with transaction.atomic():  # the first shell's removal: checked (the second nurse watches), not yet committed
        ward.members.remove(nurse)
        other_shell.start()
        other_shell.join(timeout=1.0)  # on PostgreSQL it waits for the ward's row until this removal commits
    other_shell.join(timeout=30)
    assert not other_shell.is_alive(), "the second removal never finished"
    assert ward_is_watched(ward), (
        f"both of ward-b's last nurses were removed at once while its pump is infusing with a HIGH alarm: no one "
        f"watches it ({connection.vendor}; the second removal: {outcome})"
    )
    assert "refused" in outcome and outcome["refused"].code == "ward_unwatched", outcome
