"""Read querysets compiled once per shape, their moments bound at each run: the housekeeping checks' reads.

A check's read on 400 pumps cost 0.3-2.7 ms of which the SQL itself was about 0.1 ms: the rest was Django building
the queryset (filters, subqueries, ordering) and compiling it, every time (`bench/README.md`, 2026-12-07 session
40). The bridge's worker runs the checks between batches, so the messages arriving meanwhile waited behind them.

`Prepared(build)`: `build(*moments, **shape)` returns the queryset. It is called once per shape (the `shape`
values, each hashable: a limit, a lifetime from the settings, a tier's delays) and per database alias, with
stand-in moments; each stand-in's place among the compiled parameters is found, and every later run binds the real
moments there, adapted as the backend adapts a DateTimeField's value, and converts the rows as the queryset would
(`values_list`: tuples in its order). So `build` must use each moment as it is given: a moment it derives
(`moment - timedelta(...)`) could not be bound, nor one it reads itself (`timezone.now()`: it would stay the moment of
the first compilation), and any moment among the compiled parameters that is not a stand-in is refused
(`StandInDerived`); anything derived from the settings is a shape value, so a changed setting compiles anew. A moment
must be an aware datetime (`TypeError`): a naive one, which the ORM would read in TIME_ZONE with a warning, or None,
which it refuses, must not be read as UTC or as nothing due.

The compiled shapes are kept per database alias (the SQL of a vendor), not per connection: a thread's connection
must not stay open because a read was compiled on it; the backend's converters are looked up on the connection that
runs the read.
"""

from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db.models import QuerySet

from devices.services.sql import columns_converted, hot_cursor

# Stand-ins for the moments: a day no real moment is on (1900), a second apart, an odd microsecond.
STAND_IN_BASE = datetime(1900, 1, 1, 0, 0, 0, 123_457, tzinfo=UTC)
KEPT_SHAPES = 64  # compiled shapes kept per read, over the aliases and shapes (then all are dropped)
PREPARED: list["Prepared"] = []  # every one made, for the tests that hold each to the ORM


class StandInDerived(ValueError):
    """`build` put a moment in its SQL that is not one of the moments given: it cannot be bound at run time."""


class Compiled(NamedTuple):
    sql: str
    params: tuple
    slots: tuple[tuple[int, int], ...]  # (position among the parameters, index of the moment)
    # (column, converter functions, its expression): a backend's converter as its name (looked up on the connection
    # that runs the read), any other as the function
    converters: tuple[tuple[int, tuple, object], ...]
    columns: int | None  # the columns to keep of each row (an extra select's beyond), None: all


def stand_in(index: int) -> datetime:
    return STAND_IN_BASE + timedelta(seconds=index)


class Prepared:
    """A queryset (`build`) compiled once per shape and database alias; `rows` and `exists` run it."""

    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self.build = build
        self.compiled: dict[tuple, Compiled] = {}
        PREPARED.append(self)

    def rows(self, *moments: datetime, **shape: Hashable) -> list[tuple]:
        """The queryset's rows (tuples, as `values_list` gives them) as of these moments."""
        return self._run(False, moments, shape)

    def exists(self, *moments: datetime, **shape: Hashable) -> bool:
        """Whether the queryset has a row as of these moments (`QuerySet.exists`)."""
        return bool(self._run(True, moments, shape))

    def _run(self, exists: bool, moments: tuple[datetime, ...], shape: dict) -> list[tuple]:
        for moment in moments:
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise TypeError(f"{self.build.__qualname__}: a moment must be an aware datetime, not {moment!r}")
        with hot_cursor() as cursor:
            wrapper = cursor.wrapper
            key = (exists, wrapper.alias, wrapper.vendor, len(moments), tuple(sorted(shape.items())))
            compiled = self.compiled.get(key)
            if compiled is None:
                if len(self.compiled) >= KEPT_SHAPES:  # shapes that vary (a page's offset, the rows it skips)
                    self.compiled.clear()
                compiled = self.compiled[key] = self._compile(exists, wrapper, len(moments), shape)
            params = list(compiled.params)
            adapt = wrapper.ops.adapt_datetimefield_value
            for position, index in compiled.slots:
                params[position] = adapt(moments[index])
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.columns is not None:
            rows = [row[: compiled.columns] for row in rows]
        if not compiled.converters:
            return [tuple(row) for row in rows]
        ops = wrapper.ops
        converters = [(position, [getattr(ops, function) if isinstance(function, str) else function
                                  for function in functions], expression)
                      for position, functions, expression in compiled.converters]  # fmt: skip
        return [tuple(columns_converted(row, converters, wrapper)) for row in rows]

    def _compile(self, exists: bool, wrapper, count: int, shape: dict) -> Compiled:
        stand_ins = [stand_in(index) for index in range(count)]
        queryset = self.build(*stand_ins, **shape)
        query = queryset.query.exists() if exists else queryset.query
        compiler = query.get_compiler(connection=wrapper)
        sql, params = compiler.as_sql()
        adapted = {wrapper.ops.adapt_datetimefield_value(moment): index for index, moment in enumerate(stand_ins)}
        adapted |= {moment: index for index, moment in enumerate(stand_ins)}
        slots = []
        for position, value in enumerate(params):
            if isinstance(value, Hashable) and value in adapted:
                slots.append((position, adapted[value]))
            elif _moment_like(value):
                raise StandInDerived(f"{self.build.__qualname__} puts the moment {value!r} in its SQL, not one given "
                                     "(derived from one, or read): pass it as one")  # fmt: skip
        unbound = set(range(count)) - {index for _, index in slots}
        if unbound:
            raise StandInDerived(f"{self.build.__qualname__} leaves moments {sorted(unbound)} out of its SQL")
        fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
        found = compiler.get_converters(fields).items()
        converters = tuple((position, tuple(_by_name(function, wrapper.ops) for function in functions), expression)
                           for position, (functions, expression) in found)  # fmt: skip
        columns = compiler.col_count if compiler.has_extra_select else None
        return Compiled(sql, tuple(params), tuple(slots), converters, columns)


def _moment_like(value: object) -> bool:
    """Whether a compiled value is a moment (a datetime, or its text as SQLite's adapter writes it)."""
    if isinstance(value, str) and 19 <= len(value) <= 32 and value[4] == "-" and value[10] in " T":
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    return isinstance(value, datetime)


def _by_name(function, ops) -> object:
    """A converter bound to this connection's operations as its name (`Compiled.converters`), any other as it is."""
    return function.__name__ if getattr(function, "__self__", None) is ops else function
