"""What each firmware puts on the wire: the legacy one reproduces the original's trace, the modern one the contract."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from realtime.simulator.pump import PumpPhase

TRACE = json.loads((Path(__file__).with_name("legacy-firmware.json")).read_text())  # a copy of the shared trace
MISSING_ON_PURPOSE = {"remainingSteps"}  # the stepper motor's internals: nothing reads them


def start_command(order: dict, infusion_id: str = "INF-1", expires_in_s: float = 60, command_id: str = "c-1") -> bytes:
    now = datetime.now(UTC)
    payload = {"infusionId": infusion_id, **order}
    return json.dumps({"command": "START_INFUSION", "payload": payload, "timestamp": now.isoformat(),
                       "commandId": command_id,
                       "expiresAt": (now + timedelta(seconds=expires_in_s)).isoformat()}).encode()  # fmt: skip


def command(name: str, command_id: str) -> bytes:
    return json.dumps({"command": name, "payload": {}, "commandId": command_id}).encode()


ORDER = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolus": {"enabled": True, "volumeMl": 5}}


def legacy_story(pump) -> None:
    """The trace's story: start, accept, progress, pause and resume at the pump, an air bubble, completion."""
    pump._on_connected()
    pump._on_message("devices/PUMP_0001/commands", start_command(ORDER))
    pump.accept()
    pump.tick(1.0)
    pump.tick(1.0)
    pump.pause(manual=True)
    pump.resume(manual=True)
    pump.raise_fault("bubble_detected")
    pump.clear_fault("bubble_detected")
    pump.resume(manual=True)
    pump.complete()


def test_legacy_pump_publishes_what_the_original_firmware_published(make_pump):
    pump = make_pump(legacy=True)
    legacy_story(pump)
    sent, expected = pump.link.published, TRACE["infusion"]
    assert [m.topic for m in sent] == [e["topic"] for e in expected], "topics or their order differ from the trace"
    for message, original in zip(sent, expected, strict=True):
        where = f"{original['topic']} {original['payload'].get('status') or original['payload'].get('action', '')}"
        assert (message.qos, message.retain) == (original["qos"], original["retain"]), f"QoS/retain differ: {where}"
        missing = set(original["payload"]) - set(message.payload) - MISSING_ON_PURPOSE
        assert not missing, f"fields the firmware sends are missing from {where}: {missing}"
        assert "seq" not in message.payload and "bootId" not in message.payload, "the original sends no seq"
        assert type(message.payload.get("timestamp")) is type(original["payload"].get("timestamp")), where
    progress_and_completion = [m for m in sent if m.topic.endswith(("/progress", "/completion"))]
    assert all("infusionId" not in m.payload for m in progress_and_completion)
    assert sent[-3].payload["summary"]["totalVolumeMl"] == 30, "the completion counts the bolus once"
    assert sent[-4].payload["deliveredVolumeMl"] == 35, "the final progress keeps the firmware's double count"


def test_legacy_pump_waits_for_a_person_even_in_automatic_mode(make_pump):
    async def story():
        pump = make_pump(legacy=True, auto=True, confirm_delay_s=0.01)
        pump._on_message("devices/PUMP_0001/commands", start_command(ORDER))
        await asyncio.sleep(0.05)
        return pump

    pump = asyncio.run(story())
    assert pump.phase == PumpPhase.AWAITING_CONFIRMATION, "a legacy pump must not accept by itself"


def test_modern_messages_carry_seq_and_boot_id_and_presence_is_retained(make_pump):
    async def story():
        pump = make_pump(auto=True, confirm_delay_s=0.01, speed=600)
        pump._on_connected()
        pump._on_message("devices/PUMP_0001/commands", start_command(ORDER))
        await asyncio.sleep(0.05)
        for _ in range(5):
            pump.tick(1.0)
        return pump

    pump = asyncio.run(story())
    sent = pump.link.published
    assert [m.payload["seq"] for m in sent] == list(range(1, len(sent) + 1)), "seq must rise by one per message"
    assert len({m.payload["bootId"] for m in sent}) == 1 and all(m.qos == 1 for m in sent)
    assert sent[0].payload["status"] == "online" and sent[0].retain
    will = pump.firmware.link_options().will
    assert will.retain and will.qos == 1 and json.loads(will.encoded())["status"] == "offline"
    statuses = [m.payload.get("status") for m in sent if m.topic.endswith("/status")]
    assert statuses == ["online", "received_start_command", "started", "running", "completed", "idle"]
    completion = next(m for m in sent if m.topic.endswith("/completion"))
    assert completion.payload["infusionId"] == "INF-1" and completion.payload["summary"]["totalVolumeMl"] == 30
    assert any(m.topic.endswith("/bolus") for m in sent), "the bolus is reported once pushed"
    assert pump.phase == PumpPhase.IDLE


def test_modern_pump_ignores_an_expired_or_repeated_command(make_pump):
    pump = make_pump(auto=False)
    pump._on_message("devices/PUMP_0001/commands", start_command(ORDER, expires_in_s=-1, command_id="old"))
    assert pump.phase == PumpPhase.IDLE and not pump.link.published, "an expired START must be ignored"
    pump._on_message("devices/PUMP_0001/commands", start_command(ORDER, command_id="new"))
    pump._on_message("devices/PUMP_0001/commands", start_command(ORDER, command_id="new"))
    assert len(pump.link.published) == 1, "a redelivered command must act once"


def test_server_pause_resume_stop_and_a_fault_that_blocks_resume(make_pump):
    pump = make_pump()
    pump._on_message("devices/PUMP_0001/commands", start_command(ORDER))
    pump.accept()
    pump._on_message("x", command("PAUSE_INFUSION", "p"))
    assert pump.phase == PumpPhase.PAUSED
    pump.raise_fault("occlusion")
    pump._on_message("x", command("RESUME_INFUSION", "r1"))
    assert pump.phase == PumpPhase.PAUSED, "a pump does not resume while occluded"
    pump.clear_fault("occlusion")
    pump._on_message("x", command("RESUME_INFUSION", "r2"))
    assert pump.phase == PumpPhase.RUNNING
    cleared = [m.payload["type"] for m in pump.link.published if m.topic.endswith("/error")]
    assert cleared == ["occlusion", "occlusion_cleared"]
    pump._on_message("x", command("STOP_INFUSION", "s"))
    assert pump.phase == PumpPhase.IDLE and pump.infusion is None
    assert [m.payload["status"] for m in pump.link.published[-2:]] == ["stopped", "idle"]


def test_a_busy_modern_pump_refuses_a_second_start(make_pump):
    pump = make_pump()
    pump._on_message("x", start_command(ORDER, infusion_id="A", command_id="a"))
    pump.accept()
    pump._on_message("x", start_command(ORDER, infusion_id="B", command_id="b"))
    refusal = next(m for m in pump.link.published if m.topic.endswith("/infusion") and m.payload["infusionId"] == "B")
    assert refusal.payload["confirmed"] is False and pump.infusion.order.infusion_id == "A"
