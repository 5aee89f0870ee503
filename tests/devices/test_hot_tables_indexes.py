"""The tables the bridge inserts into for every message carry no index that another of their indexes already serves
(issue 17): each such index costs every insert one more b-tree and page written (migration 0038 dropped the pump's
own index of the receipts and of the change log, whose unique constraints begin with the pump)."""

import pytest
from django.db import connection

from devices.models import ChangeLogEntry, MessageReceipt
from tests.devices.test_alarm_sources import sequences_kept  # noqa: F401  (fixture)

HOT_TABLES = [MessageReceipt._meta.db_table, ChangeLogEntry._meta.db_table]
BEFORE, AFTER = [("devices", "0037_device_base_manager")], [("devices", "0038_pump_indexes_of_receipts_and_changes")]


def indexed_columns(table: str) -> dict[str, tuple[str, ...]]:
    """Every index of `table` (unique constraints' included, the primary key's not) -> its columns, in order."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {name: tuple(spec["columns"]) for name, spec in constraints.items()
            if (spec["index"] or spec["unique"]) and not spec["primary_key"] and spec["columns"]}  # fmt: skip


def redundant(table: str) -> list[tuple[str, str]]:
    """(index, the index serving it): an index whose columns lead another index of the same table."""
    indexes = indexed_columns(table)
    return sorted((name, other) for name, columns in indexes.items() for other, longer in indexes.items()
                  if other != name and len(longer) > len(columns) and longer[: len(columns)] == columns)  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("table", HOT_TABLES)
def test_no_index_of_a_hot_table_is_served_by_another(table):
    assert indexed_columns(table), f"{table}: no index read"
    assert redundant(table) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sequences_kept")
def test_0038_drops_the_pump_indexes_and_gives_them_back_when_reversed():
    from django.db.migrations.executor import MigrationExecutor

    def pump_only() -> list[str]:
        return sorted(name for table in HOT_TABLES for name, columns in indexed_columns(table).items()
                      if columns == ("device_id",))  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    assert pump_only() == ["devices_changelogentry_device_id_f55e956c", "devices_messagereceipt_device_id_8b8a2890"]
    executor.loader.build_graph()
    executor.migrate(AFTER)
    assert pump_only() == []
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert pump_only() == []
