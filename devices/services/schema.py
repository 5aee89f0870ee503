"""The database's schema against this code: a table or column missing (`migrate` not run yet) told apart from a bug.

A table or column the code names and the database lacks is SQLite's `OperationalError` ("no such column") but
PostgreSQL's `ProgrammingError` (UndefinedColumn 42703, UndefinedTable 42P01), which reads as a fault of the statement.
Review 34: the bridge, started on new code before `migrate` on PostgreSQL, took it for a fault of each message it was
applying, dead-lettered and acknowledged an occlusion. Both are `SchemaBehindCode` here, an `OperationalError`: the
database's state, retried unacknowledged like a locked or absent database, never blamed on a message.
"""

from django.db import DEFAULT_DB_ALIAS, OperationalError, ProgrammingError, connections
from django.db.migrations.executor import MigrationExecutor

UNDEFINED_OBJECTS = ("42703", "42P01")  # PostgreSQL's SQLSTATE for an undefined column, an undefined table
SQLITE_UNDEFINED = ("no such column", "no such table", "has no column named")


class SchemaBehindCode(OperationalError):
    """The database lacks a table or column this code uses: `migrate` has not run since the code was installed."""


def schema_behind(exc: BaseException) -> bool:
    """Whether a database error says a table or column of this code is missing (either database's words)."""
    if isinstance(exc, SchemaBehindCode):
        return True
    if getattr(exc.__cause__, "sqlstate", None) in UNDEFINED_OBJECTS:
        return isinstance(exc, ProgrammingError)
    return isinstance(exc, OperationalError) and any(words in str(exc) for words in SQLITE_UNDEFINED)


def schema_fault(exc: Exception) -> SchemaBehindCode | None:
    """`exc` said as `SchemaBehindCode` when it says a table or column is missing (and is not one already)."""
    if isinstance(exc, SchemaBehindCode) or not schema_behind(exc):
        return None
    return SchemaBehindCode(f"database schema behind the code (run `manage.py migrate`): {exc}")


def schema_faults_as_infrastructure(execute, sql, params, many, context):
    """A Django execute wrapper (`connection.execute_wrappers`): a statement naming what the database lacks raises
    `SchemaBehindCode` (`devices.services.sql.hot_cursor` translates its own statements alike)."""
    try:
        return execute(sql, params, many, context)
    except (ProgrammingError, OperationalError) as exc:
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
