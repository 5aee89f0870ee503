"""Two bridge processes sharing the pumps through slots (BRIDGE_SLOTS, BRIDGE_PROCESSES, `--index`).

`start_bridges` starts bridge 0 and bridge 1 of 2 with one client id base and waits until each owns its home
slot; `pumps_per_slot` picks pump ids in each slot (`realtime.bridge.slot_config.slot_of`), so a test's traffic is
split over both; `slot_owner` reads who holds a slot's lease.
"""

from devices.models import BridgeLease
from realtime.bridge.slot_config import slot_name, slot_of
from tests.support.bridge import BridgeProcess, wait_until
from tests.support.processes import free_port

SLOTS = 2
LEASE_S = "1.5"


def pumps_per_slot(per_slot: int, *, slots: int = SLOTS) -> dict[int, list[str]]:
    """`per_slot` pump ids in each slot, the lowest numbers first."""
    chosen: dict[int, list[str]] = {slot: [] for slot in range(slots)}
    number = 0
    while any(len(ids) < per_slot for ids in chosen.values()):
        number += 1
        device_id = f"PUMP_{number:04d}"
        if len(chosen[slot_of(device_id, slots)]) < per_slot:
            chosen[slot_of(device_id, slots)].append(device_id)
    return chosen


def bridge_name(index: int) -> str:
    return f"bridge-shared-{index}"


def start_bridges(broker_url: str, artifacts_dir, *, realtime_urls: tuple[str, str] | None = None,
                  **env: str) -> list[BridgeProcess]:  # fmt: skip
    """Bridge 0 and bridge 1 of 2, sharing one client id base, started together; each owns its home slot.

    `realtime_urls`: the Daphne internal URL each bridge wakes (a dead port each when none is needed);
    `env` adds to (or overrides) the bridges' environment.
    """
    client_id = f"shared-{free_port()}"
    urls = realtime_urls or tuple(f"http://127.0.0.1:{free_port()}" for _ in range(SLOTS))
    bridges = [
        BridgeProcess(
            broker_url,
            urls[index],
            artifacts_dir,
            name=bridge_name(index),
            args=("--index", str(index)),
            **{
                "MQTT_CLIENT_ID": client_id,
                "BRIDGE_SLOTS": str(SLOTS),
                "BRIDGE_PROCESSES": "2",
                "BRIDGE_LEASE_S": LEASE_S,
                "REPORT_BUDGET_PER_S": "0",  # a slot's backlog after a takeover arrives at once: not a flood here
                "PROGRESS_FLOOD_PER_S": "0",  # (as in test_crash_recovery.py; the budgets have tests of their own)
                **env,
            },
        )  # fmt: skip
        for index in range(2)
    ]
    try:
        for bridge in bridges:
            bridge.start(wait=False)
        for bridge in bridges:
            bridge.wait_connected(timeout=60)  # Django boots in up to ~10 s at a load of 15 on 2 cores
        wait_until(lambda: all(slot_owner(slot).startswith(f"{bridge_name(slot)}@") for slot in range(SLOTS)),
                   message="each bridge should own its home slot")  # fmt: skip
    except BaseException:
        for bridge in bridges:  # never leave a bridge running past its test
            bridge.stop()
        raise
    return bridges


def slot_owner(slot: int) -> str:
    """The owner (`<bridge name>@<host>...`) of the slot's lease, or "" when nobody holds it."""
    lease = BridgeLease.objects.filter(name=slot_name(slot)).first()
    return lease.owner if lease else ""
