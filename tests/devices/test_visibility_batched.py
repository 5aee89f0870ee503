"""The rights re-check reads what every connected principal may see together (`device_ids_visible_to_each`): it
must say exactly what `device_ids_visible_to` says for each one, in a few queries whatever their number."""

import pytest
from django.contrib.auth.models import AnonymousUser

from devices.access_selectors import device_ids_visible_to, device_ids_visible_to_each
from devices.models import Device
from devices.services.accounts import service_account_create
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def test_the_batched_read_says_what_each_principal_may_see(django_assert_max_num_queries):
    icu, ward_b = make_ward("icu"), make_ward("ward-b")
    for device_id, ward in (("P_ICU_1", icu), ("P_ICU_2", icu), ("P_B_1", ward_b), ("P_NOWARD", icu)):
        make_device(device_id, ward=ward)
    Device.objects.filter(device_id="P_NOWARD").update(ward=None)  # a pump in no ward: staff only
    nurse = make_user("icu-nurse", ward=icu)
    both = make_user("both-nurse", ward=icu)
    ward_b.members.add(both)
    nobody = make_user("no-ward")
    staff = make_user("staff", is_staff=True)
    account, _ = service_account_create(name="icu-feed", wards=[icu])
    everywhere, _ = service_account_create(name="all-feed", all_wards=True)
    among = {"P_ICU_1", "P_ICU_2", "P_B_1", "P_NOWARD", "UNKNOWN"}
    principals = [nurse, both, nobody, staff, account, everywhere, AnonymousUser()]
    requests = [(principal, set(among)) for principal in principals] + [(nurse, set()), (staff, {"P_B_1"})]
    expected = [device_ids_visible_to(principal, among=watched) for principal, watched in requests]
    with django_assert_max_num_queries(2 + 2):  # the pumps' wards, the memberships; one a service account
        batched = device_ids_visible_to_each(requests)
    assert batched == expected
    assert batched[0] == {"P_ICU_1", "P_ICU_2"} and batched[1] == {"P_ICU_1", "P_ICU_2", "P_B_1"}
    assert batched[3] == {"P_ICU_1", "P_ICU_2", "P_B_1", "P_NOWARD"}, "staff: every registered pump, none unknown"


def test_a_hundred_users_cost_two_queries(django_assert_num_queries):
    icu = make_ward("icu")
    make_device("P_1", ward=icu)
    users = [make_user(f"nurse-{n}", ward=icu if n % 2 else None) for n in range(100)]
    with django_assert_num_queries(2):
        visible = device_ids_visible_to_each([(user, {"P_1"}) for user in users])
    assert visible == [({"P_1"} if n % 2 else set()) for n in range(100)]
