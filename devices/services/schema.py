"""The database's schema against this code: a table or column missing (`migrate` not run yet), or a later release's
constraint this code cannot fill (`migrate` run while this code still runs), told apart from a bug.

A table or column the code names and the database lacks is SQLite's `OperationalError` ("no such column") but
PostgreSQL's `ProgrammingError` (UndefinedColumn 42703, UndefinedTable 42P01), which reads as a fault of the statement.
Review 34: the bridge, started on new code before `migrate` on PostgreSQL, took it for a fault of each message it was
applying, dead-lettered and acknowledged an occlusion. Both are `SchemaBehindCode` here, an `OperationalError`: the
database's state, retried unacknowledged like a locked or absent database, never blamed on a message. A column a later
release dropped or renamed reads the same way, so its words name both causes.

The schema ahead of the code (review 36: a bridge of the previous release still consuming after `migrate`) fails
otherwise: Django's AddField leaves a NOT NULL column without a database default, so every INSERT of this code into
that table is an `IntegrityError` (NotNullViolation 23502, SQLite's "NOT NULL constraint failed: table.column"), and a
new CHECK constraint refuses rows this code thinks right (23514, "CHECK constraint failed: name"). Either, naming a
column or constraint this code's models do not have (or a NOT NULL on a column they let be NULL), is
`SchemaAheadOfCode`, an `OperationalError` too. One naming what the models do have is a bug of this code about one
row: it stays an `IntegrityError`, dead-lettered as the message's fault, so it can never hold the bridge up for good.
An error that names no column or constraint (another shape of message) is taken as the row's fault, as before. Not
told: a later release's unique index or foreign key (SQLite names neither; the bridge rarely deletes what a new
table could reference).
"""

import re
from functools import lru_cache
from typing import NamedTuple

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, ProgrammingError, connections
from django.db.migrations.executor import MigrationExecutor

UNDEFINED_OBJECTS = ("42703", "42P01")  # PostgreSQL's SQLSTATE for an undefined column, an undefined table
SQLITE_UNDEFINED = ("no such column", "no such table", "has no column named")
NOT_NULL_VIOLATION, CHECK_VIOLATION = "23502", "23514"  # PostgreSQL's SQLSTATE
SQLITE_NOT_NULL = re.compile(r"NOT NULL constraint failed: (\w+)\.(\w+)$")
SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)$")  # a column's own check is named by its column


class SchemaBehindCode(OperationalError):
    """The database lacks a table or column this code uses: `migrate` has not run since the code was installed (or a
    later release's migration dropped it)."""


class SchemaAheadOfCode(OperationalError):
    """The database holds a later release's NOT NULL column or CHECK constraint this code does not know: `migrate`
    ran for newer code while this code still runs (upgrade or stop it)."""


class CodeSchema(NamedTuple):
    """What this code's models know of the database: the tables, their columns, their constraints' names."""

    columns: frozenset[tuple[str, str]]  # (table, column)
    nullable_columns: frozenset[tuple[str, str]]  # those the code may leave NULL: NOT NULL there is a later schema's
    checked_columns: frozenset[tuple[str, str]]  # those with a check of their own (a positive integer's)
    constraints: frozenset[str]  # Meta.constraints' names


def schema_behind(exc: BaseException) -> bool:
    """Whether a database error says a table or column of this code is missing (either database's words)."""
    if isinstance(exc, SchemaBehindCode):
        return True
    if getattr(exc.__cause__, "sqlstate", None) in UNDEFINED_OBJECTS:
        return isinstance(exc, ProgrammingError)
    return isinstance(exc, OperationalError) and any(words in str(exc) for words in SQLITE_UNDEFINED)


def schema_ahead(exc: BaseException) -> bool:
    """Whether an integrity error names a NOT NULL column or a CHECK constraint this code's models do not know."""
    if isinstance(exc, SchemaAheadOfCode):
        return True
    if not isinstance(exc, IntegrityError):
        return False
    cause = exc.__cause__
    sqlstate, diag = getattr(cause, "sqlstate", None), getattr(cause, "diag", None)
    if sqlstate == NOT_NULL_VIOLATION and diag is not None and diag.table_name and diag.column_name:
        return not not_null_known(diag.table_name, diag.column_name)
    if sqlstate == CHECK_VIOLATION and diag is not None and diag.table_name and diag.constraint_name:
        return not check_constraint_known(diag.table_name, diag.constraint_name)
    if found := SQLITE_NOT_NULL.search(str(exc)):
        return not not_null_known(found[1], found[2])
    if found := SQLITE_CHECK.search(str(exc)):
        return not check_constraint_known("", found[1])
    return False


def not_null_known(table: str, column: str) -> bool:
    """A NOT NULL of this code: a column its model has, and does not let be NULL."""
    known = code_schema()
    return (table, column) in known.columns and (table, column) not in known.nullable_columns


def check_constraint_known(table: str, name: str) -> bool:
    """A CHECK constraint of this code: named in a model's Meta, or a column's own check (PostgreSQL names one
    `<table>_<column>_check`, Django's AlterField `<table>_<column>_<hash>_check`; SQLite says the column's name)."""
    known = code_schema()
    if name in known.constraints:
        return True
    if not table:
        return any(column == name for _, column in known.checked_columns)
    return any(
        checked == table and re.fullmatch(rf"{re.escape(table)}_{re.escape(column)}(_[0-9a-f]{{8}})?_check", name)
        for checked, column in known.checked_columns
    )


@lru_cache(maxsize=4)
def code_schema(using: str = DEFAULT_DB_ALIAS) -> CodeSchema:
    """The tables, columns and constraints of every model of this code (read once: the code does not change)."""
    connection = connections[using]
    columns, nullable, checked, constraints = set(), set(), set(), set()
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        for field in model._meta.local_concrete_fields:
            columns.add((table, field.column))
            if field.null:
                nullable.add((table, field.column))
            if field.db_check(connection):
                checked.add((table, field.column))
        constraints.update(constraint.name for constraint in model._meta.constraints)
    return CodeSchema(frozenset(columns), frozenset(nullable), frozenset(checked), frozenset(constraints))


def schema_fault(exc: Exception) -> SchemaBehindCode | SchemaAheadOfCode | None:
    """`exc` said as `SchemaBehindCode` when it says a table or column is missing, as `SchemaAheadOfCode` when it names
    a later release's column or constraint (and is not one of them already)."""
    if isinstance(exc, SchemaBehindCode | SchemaAheadOfCode):
        return None
    if schema_behind(exc):
        return SchemaBehindCode(
            f"database schema behind the code (run `manage.py migrate`; or a later release's dropped it): {exc}"
        )
    if schema_ahead(exc):
        return SchemaAheadOfCode(f"database schema ahead of the code (migrated for a later release: upgrade or stop"
                                 f" this bridge): {exc}")  # fmt: skip
    return None


def schema_faults_as_infrastructure(execute, sql, params, many, context):
    """A Django execute wrapper (`connection.execute_wrappers`): a statement naming what the database lacks raises
    `SchemaBehindCode`, one refused by a later release's column or constraint `SchemaAheadOfCode`
    (`devices.services.sql.hot_cursor` translates its own statements alike)."""
    try:
        return execute(sql, params, many, context)
    except (ProgrammingError, OperationalError, IntegrityError) as exc:
        fault = schema_fault(exc)
        if fault is None:
            raise
        raise fault from exc


def migrations_unapplied(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations of this code the database has not had applied (`app.name`, in the order `migrate` runs
    them): empty when the schema is this code's."""
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]
