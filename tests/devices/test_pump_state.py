"""A pump's state has one transition table and one writer (`pump_state_set`), as sessions, commands and alarms do."""

import ast
from pathlib import Path

import pytest

from devices.exceptions import PumpStreamError
from devices.services.pump_state import pump_state_set
from devices.states import PUMP_TRANSITIONS, PumpState
from tests.factories import make_device

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path("devices/services/pump_state.py")


def pump_state_assignments() -> list[str]:
    """`file:line` of every assignment to an attribute `pump_state` in the application's code."""
    found = []
    for package in ("devices", "realtime"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                for target in targets:
                    for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                        if isinstance(item, ast.Attribute) and item.attr == "pump_state":
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_one_writer_assigns_a_pumps_state():
    writes = [where for where in pump_state_assignments() if not where.startswith(str(WRITER))]
    assert writes == [], f"pump_state written outside pump_state_set: {writes}"
    assert pump_state_assignments(), "the scan found not even the writer: it is broken"


def test_every_pump_state_has_its_row_in_the_transition_table():
    assert set(PUMP_TRANSITIONS) == set(PumpState), "a pump state without its row of legal moves"
    for state, targets in PUMP_TRANSITIONS.items():
        assert state not in targets and targets <= set(PumpState), state


@pytest.mark.django_db
def test_the_writer_moves_by_the_table_and_refuses_what_it_does_not_list(monkeypatch):
    device = make_device(pump_state=PumpState.IDLE)
    assert pump_state_set(device=device, state=PumpState.RUNNING) is True
    device.refresh_from_db()
    assert device.pump_state == PumpState.RUNNING, "the writer stores the state"
    assert pump_state_set(device=device, state=PumpState.RUNNING) is False, "no change, nothing written"
    with pytest.raises(PumpStreamError, match="cannot go from running to exploded"):
        pump_state_set(device=device, state="exploded")
    monkeypatch.setitem(PUMP_TRANSITIONS, PumpState.RUNNING, frozenset({PumpState.PAUSED}))
    with pytest.raises(PumpStreamError) as refused:
        pump_state_set(device=device, state=PumpState.IDLE)
    assert refused.value.code == "illegal_transition"
    device.refresh_from_db()
    assert device.pump_state == PumpState.RUNNING, "a refused move leaves the stored state alone"


@pytest.mark.django_db
def test_the_bulk_path_leaves_storing_to_its_caller():
    device = make_device(pump_state=PumpState.IDLE)
    assert pump_state_set(device=device, state=PumpState.PAUSED, save=False) is True
    assert device.pump_state == PumpState.PAUSED
    device.refresh_from_db()
    assert device.pump_state == PumpState.IDLE, "save=False must not write the row"
