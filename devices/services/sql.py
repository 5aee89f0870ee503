"""SQL for the bridge's hot path, written once per shape instead of compiled by the ORM on every batch.

The ORM compiling a small `filter(...__in=...)` query cost more than running it: about a third of the
bridge's CPU with small batches (`bench/README.md`, 2026-12-01). Callers run the text with `raw()` (rows
become models through Django's converters) or a cursor (plain values).
"""

from functools import lru_cache

from django.db import connection
from django.db.models import Model


@lru_cache(maxsize=4096)
def select_in_sql(
    model: type[Model],
    fields: tuple[str, ...],
    in_counts: tuple[tuple[str, int], ...],
    *,
    equal: tuple[str, ...] = (),
    order_by_pk: bool = False,
    lock: bool = False,
) -> str:
    """`SELECT fields FROM table WHERE a IN (%s…) AND b IN (%s…) [AND c = %s] [ORDER BY pk] [FOR UPDATE]`.

    Parameters go in that order: each IN list's values, then the `equal` values. `lock` adds FOR UPDATE
    where the database has it (SQLite locks the whole file for the IMMEDIATE transaction instead).
    """
    meta, quote = model._meta, connection.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    conditions = [f"{column(name)} IN ({', '.join(['%s'] * count)})" for name, count in in_counts]
    conditions += [f"{column(name)} = %s" for name in equal]
    sql = f"SELECT {', '.join(map(column, fields))} FROM {quote(meta.db_table)} WHERE {' AND '.join(conditions)}"
    if order_by_pk:
        sql += f" ORDER BY {quote(meta.pk.column)}"
    return sql + " FOR UPDATE" if lock and connection.features.has_select_for_update else sql
