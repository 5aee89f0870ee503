"""How a service working through due rows lets its caller guard each one (the bridge's `realtime/bridge/rows.py`)."""

from collections.abc import Callable

RowId = int | str
RowRun = Callable[[str, RowId, Callable[[], int]], int]  # (check, row id, handle the row) -> what handling returned


def row_run_plain(check: str, row_id: RowId, handle: Callable[[], int]) -> int:
    """Handle a row unguarded: its errors are the caller's."""
    return handle()
