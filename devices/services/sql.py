"""SQL for the bridge's hot path, written once per shape instead of compiled by the ORM on every batch.

The ORM compiling a small `filter(...__in=...)` query cost more than running it: about a third of the
bridge's CPU with small batches (`bench/README.md`, 2026-12-01). Callers run the text with `models_select`
(rows become models through Django's own converters, found once per shape: `raw()` finds them on every
query, which cost more than the query) or a cursor (plain values); many rows' fields are stored with one
prepared UPDATE run per row (`rows_update`).
"""

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, ProgrammingError, connection, connections
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import DEFERRED, Field, Model

from devices.services.schema import schema_fault, schema_faults_as_infrastructure


class HotCursor:
    """The database's own cursor, for statements written in Django's `%s` style (`hot_cursor`), with its connection
    (`wrapper`, for its `ops`: each `connections[...]` is a context-local look-up).

    With the DB-API cursor (`own`), each statement is checked and translated here as Django's cursor would (a
    transaction broken by an earlier error runs nothing more; errors become Django's, a schema fault
    `schema_fault`'s), so one cursor can serve all of a batch's statements without wrapping the code between them.
    `prepared`: the values prepared for its statements (`_prepare`, `datetime_prepared`), so a batch's receive time is
    adapted once for its receipts, its pumps' rows and their sessions'.
    """

    def __init__(self, wrapper, cursor, *, own: bool) -> None:
        self.wrapper, self.cursor, self.own = wrapper, cursor, own
        self.qmark = own and wrapper.vendor == "sqlite"
        self.prepared: dict[tuple[str, int], tuple[object, object]] = {}

    def execute(self, sql: str, params: Sequence) -> None:
        """Run one statement; its rows (if any) are read with `fetchall`."""
        self._run(self.cursor.execute, _qmark_sql(sql) if self.qmark else sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """Run one statement once per row of parameters."""
        self._run(self.cursor.executemany, _qmark_sql(sql) if self.qmark else sql, rows)

    def fetchall(self) -> list[tuple]:
        return self._run(self.cursor.fetchall) if self.own else self.cursor.fetchall()

    def _run(self, call, *args):
        if not self.own:  # Django's cursor: its own checks, translation and recording
            return call(*args)
        self.wrapper.validate_no_broken_transaction()
        try:
            with self.wrapper.wrap_database_errors:
                return call(*args)
        except (ProgrammingError, OperationalError, IntegrityError) as exc:  # a schema fault (`schema_fault`)
            fault = schema_fault(exc)
            if fault is None:
                raise
            raise fault from exc


def hot_cursor(shared: HotCursor | None = None) -> AbstractContextManager[HotCursor]:
    """A cursor for the bridge's hot statements (`_new_hot_cursor`); `shared`, when given, is the one a caller opened
    for all of its statements (a routine batch's: one per batch), handed on as it is."""
    return nullcontext(shared) if shared is not None else _new_hot_cursor()


@contextmanager
def _new_hot_cursor() -> Iterator[HotCursor]:
    """A cursor for the bridge's hot statements: the DB-API cursor itself, not Django's wrappers around each call.

    Django's `CursorWrapper` checks the thread, the broken transaction and the execute wrappers, translates errors and
    (on SQLite) rewrites `%s` into `?` on every statement: about 8-10 µs each, 8 statements a routine batch
    (`bench/README.md`, 2026-12-05). Here the thread is checked once per cursor; each statement is still checked
    against a broken transaction and its errors translated into Django's (`HotCursor`: a locked database stays an
    `OperationalError` the bridge retries), and the SQLite text is rewritten once per statement shape. When
    statements are being recorded (a test's `CaptureQueriesContext` or `assertNumQueries`: `force_debug_cursor`) or
    wrapped (an `execute_wrapper`, other than the bridge's `schema_faults_as_infrastructure`, whose translation is
    done here too), Django's own cursor is used, so they still see each one. DEBUG alone does not record them: the
    integration tests' bridge runs with DEBUG on, and must run the statements as production does.
    """
    wrapper = connections[DEFAULT_DB_ALIAS]  # resolved once: every `connection.x` is a thread-local look-up
    if wrapper.force_debug_cursor or any(
        wrapped is not schema_faults_as_infrastructure for wrapped in wrapper.execute_wrappers
    ):
        with wrapper.cursor() as cursor:
            yield HotCursor(wrapper, cursor, own=False)
        return
    wrapper.validate_thread_sharing()
    wrapper.validate_no_broken_transaction()
    wrapper.ensure_connection()
    with wrapper.wrap_database_errors:
        cursor = wrapper.connection.cursor() if wrapper.vendor == "sqlite" else wrapper.create_cursor()
    try:
        yield HotCursor(wrapper, cursor, own=True)
    finally:
        with wrapper.wrap_database_errors:
            cursor.close()


_FORMAT_PARAMETER = re.compile(r"(?<!%)%s")


@lru_cache(maxsize=4096)
def _qmark_sql(sql: str) -> str:
    """`sql` in SQLite's `?` style, as Django's `SQLiteCursorWrapper.convert_query` rewrites it at every call."""
    return _FORMAT_PARAMETER.sub("?", sql).replace("%%", "%")


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

    # an empty list matches nothing ("IN ()" is SQLite's only: PostgreSQL refuses it as a syntax error)
    conditions = [f"{column(name)} IN ({', '.join(['%s'] * count)})" if count else "1 = 0" for name, count in in_counts]
    conditions += [f"{column(name)} = %s" for name in equal]
    sql = f"SELECT {', '.join(map(column, fields))} FROM {quote(meta.db_table)} WHERE {' AND '.join(conditions)}"
    if order_by_pk:
        sql += f" ORDER BY {quote(meta.pk.column)}"
    return sql + " FOR UPDATE" if lock and connection.features.has_select_for_update else sql


@lru_cache(maxsize=64)
def insert_sql(model: type[Model], fields: tuple[str, ...]) -> str:
    """`INSERT INTO table (a, b, ...) VALUES (%s, %s, ...)`, for a cursor's `executemany` of plain rows."""
    meta, quote = model._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in fields)
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"


def models_select(
    model: type[Model], fields: tuple[str, ...], sql: str, params: list, *, extra: tuple[str, ...] = (),
    cursor: HotCursor | None = None,
) -> list[Model]:  # fmt: skip
    """Run `sql`, which selects `fields` (in the model's field order), and return model instances.

    What `Model.objects.raw()` returns, without its per-query work: each column goes through the
    backend's and the field's converters (as the ORM applies them), then `Model.from_db`. Columns after
    `fields` are set as they come on each instance, named by `extra` (as `annotate()` would). `cursor`: the
    caller's, shared by its statements (`hot_cursor`).
    """
    with hot_cursor(cursor) as cursor:
        wrapper = cursor.wrapper
        reader = _row_reader(wrapper.ops, model, fields)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        instance = _instance(wrapper, model, reader, row[: len(fields)])
        for name, value in zip(extra, row[len(fields) :], strict=True):
            setattr(instance, name, value)
        instances.append(instance)
    return instances


def model_from_columns(model: type[Model], fields: tuple[str, ...], columns: Sequence, wrapper=None) -> Model:
    """One instance from the columns of `fields` (in the model's field order) of a row read some other way (another
    model's `models_select` with these as its `extra`): through the same converters, then `Model.from_db`.
    `wrapper`: the connection the row was read on, when the caller has it at hand (a `HotCursor`'s)."""
    if wrapper is None:
        wrapper = connections[DEFAULT_DB_ALIAS]
    return _instance(wrapper, model, _row_reader(wrapper.ops, model, fields), columns)


def columns_converted(columns: Sequence, converters: Sequence[tuple[int, Sequence, object]], wrapper) -> list:
    """A row's columns through their converters, as the ORM applies them: per converted column, its position, its
    converter functions and its column expression."""
    values = list(columns)
    for position, functions, expression in converters:
        value = values[position]
        for function in functions:
            value = function(value, expression, wrapper)
        values[position] = value
    return values


def _instance(wrapper, model: type[Model], reader: tuple[tuple, tuple, tuple], columns: Sequence) -> Model:
    attnames, converters, deferred_at = reader
    values = columns_converted(columns, converters, wrapper)
    for position in deferred_at:  # a value for every field: from_db then skips matching names to fields
        values.insert(position, DEFERRED)
    return model.from_db(wrapper.alias, attnames, values)


def model_fields_save(instance: Model, fields: tuple[str, ...]) -> None:
    """`instance.save(update_fields=fields)` for a model nobody listens to the saves of, without the ORM
    compiling the UPDATE each time: `UPDATE table SET a = %s, ... WHERE pk = %s`, written once per shape."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    values = [meta.get_field(name).get_db_prep_save(getattr(instance, meta.get_field(name).attname), wrapper)
              for name in fields]  # fmt: skip
    with wrapper.cursor() as cursor:
        cursor.execute(_update_sql(wrapper.vendor, type(instance), fields), [*values, instance.pk])


@lru_cache(maxsize=256)
def _update_sql(vendor: str, model: type[Model], fields: tuple[str, ...]) -> str:
    meta, quote = model._meta, connections[DEFAULT_DB_ALIAS].ops.quote_name
    assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"


@lru_cache(maxsize=256)
def _row_reader(ops: BaseDatabaseOperations, model: type[Model], fields: tuple[str, ...]) -> tuple[tuple, tuple, tuple]:
    """For rows of `fields`: their attnames; per column that needs them, its converters and column expression;
    and where, in ascending order, a deferred marker goes for each concrete field not selected."""
    meta = model._meta
    chosen = [meta.get_field(name) for name in fields]
    if [field for field in meta.concrete_fields if field in chosen] != chosen:
        raise ValueError(f"fields of {meta.label} must be given in the model's order: {fields}")
    converters = []
    for position, field in enumerate(chosen):
        column = field.get_col(meta.db_table)
        functions = ops.get_db_converters(column) + column.get_db_converters(ops.connection)
        if functions:
            converters.append((position, tuple(functions), column))
    deferred_at = tuple(index for index, field in enumerate(meta.concrete_fields) if field not in chosen)
    return tuple(field.attname for field in chosen), tuple(converters), deferred_at


def rows_update(
    rows: Sequence[Model], field_names: tuple[str, ...], prepared: dict, cursor: HotCursor | None = None
) -> None:
    """Store `field_names` of many rows of one model with one prepared UPDATE run per row (executemany).

    Django's `bulk_update` builds a CASE expression per field and row: 90 % of a batch's time for
    500 pumps. The values are prepared as each field's own `get_db_prep_save` does, as `save()` would,
    once per value object: a pump's progress and receive time are shared by its row and its session's.
    `cursor`: the caller's, shared by its statements (`hot_cursor`).
    """
    if not rows:
        return
    with hot_cursor(cursor) as cursor:
        wrapper = cursor.wrapper
        sql, fields = _update_statement(wrapper.ops, type(rows[0]), field_names)
        params = [[_prepare(field, kind, getattr(row, field.attname), prepared, wrapper) for field, kind in fields]
                  + [row.pk] for row in rows]  # fmt: skip
        cursor.executemany(sql, params)


# Fields whose preparation returns an int (not a bool), or a str, as it is; any other value goes through Django.
INTEGER_FIELD_TYPES = frozenset({
    "AutoField", "BigAutoField", "BigIntegerField", "ForeignKey", "IntegerField", "PositiveBigIntegerField",
    "PositiveIntegerField", "PositiveSmallIntegerField", "SmallIntegerField",
})  # fmt: skip
TEXT_FIELD_TYPES = frozenset({"CharField", "SlugField", "TextField"})


@lru_cache(maxsize=64)
def _update_statement(ops, model: type[Model], field_names: tuple[str, ...]) -> tuple[str, tuple]:
    """`UPDATE table SET a = %s, ... WHERE pk = %s`, and per field the field and its internal type."""
    meta, quote = model._meta, ops.quote_name
    fields = tuple((field, field.get_internal_type()) for field in map(meta.get_field, field_names))
    assignments = ", ".join(f"{quote(field.column)} = %s" for field, _ in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s", fields


def datetime_prepared(moment: datetime | None, cursor: HotCursor) -> object:
    """An aware datetime as the backend stores it (`adapt_datetimefield_value`), once per value object among the
    cursor's statements (as `_prepare` prepares a DateTimeField's, sharing its `prepared`)."""
    if moment is None or moment.tzinfo is None:  # not remembered: a DateTimeField's preparation differs (`_prepare`)
        return cursor.wrapper.ops.adapt_datetimefield_value(moment)
    key = ("DateTimeField", id(moment))
    if key not in cursor.prepared:
        cursor.prepared[key] = (moment, cursor.wrapper.ops.adapt_datetimefield_value(moment))
    return cursor.prepared[key][1]


def _prepare(field: Field, kind: str, value: object, prepared: dict, wrapper) -> object:
    """`field.get_db_prep_save(value)`, remembered per field type and value object (kept alive meanwhile).

    Short cuts that give what Django's own preparation gives: None stays None; an int in an integer field
    (on SQLite: PostgreSQL's backend wraps it in the column's type, psycopg's `Int8`, as below) and a str in a
    text field stay as they are; an aware datetime goes straight to the backend's adapter (Django checks only
    that it is aware first).
    """
    if (
        value is None
        or (type(value) is int and kind in INTEGER_FIELD_TYPES and wrapper.vendor == "sqlite")
        or (isinstance(value, str) and kind in TEXT_FIELD_TYPES)
    ):
        return value
    key = (kind, id(value))
    if key not in prepared:
        if kind == "DateTimeField" and isinstance(value, datetime) and value.tzinfo is not None:
            prepared[key] = (value, wrapper.ops.adapt_datetimefield_value(value))
        else:
            prepared[key] = (value, field.get_db_prep_save(value, wrapper))
    return prepared[key][1]
