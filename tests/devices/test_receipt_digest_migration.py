"""Migration 0024_receipt_digest on receipts kept before it (review 17): every one kept, digest 0, unique under the
new key; and the migration changes the receipts only (no Device field)."""

import pytest

from devices.models import MessageReceipt
from tests.devices.test_alarm_sources import sequences_kept  # noqa: F401  (fixture)

BEFORE, AFTER = [("devices", "0023_session_progress_mismatch")], [("devices", "0024_receipt_digest")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sequences_kept")
def test_0024_keeps_every_receipt_with_digest_0_and_adds_no_device_field():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    device = old.get_model("devices", "Device").objects.create(device_id="MIG1", boot_id="0000002a")
    receipts = old.get_model("devices", "MessageReceipt").objects
    for seq in range(5):
        receipts.create(device=device, boot_id="0000002a", device_seq=seq)
    receipts.create(device=device, boot_id="older", device_seq=99)
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    after = executor.loader.project_state(AFTER).apps
    device_fields = {field.name for field in after.get_model("devices", "Device")._meta.get_fields()}
    before_fields = {field.name for field in old.get_model("devices", "Device")._meta.get_fields()}
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    kept = sorted(MessageReceipt.objects.filter(device__device_id="MIG1").values_list("boot_id", "device_seq",
                                                                                      "digest"))  # fmt: skip
    assert kept == [("0000002a", seq, 0) for seq in range(5)] + [("older", 99, 0)], kept
    assert device_fields == before_fields, f"0024 changes Device: {device_fields ^ before_fields}"
