"""One simulated pump: its state machine, commands from the server, buttons at its screen, and its clock."""

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from protocol import topics
from protocol.commands import EnvelopeUnreadable, command_envelope_parse
from realtime.simulator.faults import LOW_BATTERY_LEVEL, cleared_type, fault_named
from realtime.simulator.legacy import LegacyFirmware
from realtime.simulator.link import PumpLink
from realtime.simulator.messages import Message
from realtime.simulator.modern import ModernFirmware
from realtime.simulator.pump import Infusion, Order, OrderError, PumpPhase

logger = logging.getLogger(__name__)

SEEN_COMMANDS = 256
OWN_INFUSION_PREFIX = "pump-"  # an infusion started at the pump's screen; the server's ids start `inf_`


@dataclass(frozen=True)
class PumpSettings:
    """How one simulated pump behaves."""

    device_id: str
    legacy: bool = False
    auto: bool = False  # confirm a START by itself (a legacy pump only with auto_accept)
    auto_accept: bool = False
    confirm_delay_s: float = 1.0
    speed: float = 1.0  # simulated seconds per real second
    progress_interval_s: float = 1.0
    phase_s: float = 0.0  # offset of this pump's ticks, so a fleet does not publish in lockstep
    free_run: Order | None = None  # fleet load: start this infusion locally, again and again


class SimulatedPump:
    """A pump speaking MQTT exactly as the firmware would; `observer` sees every line sent and received."""

    def __init__(self, settings: PumpSettings, broker: dict, *, observer: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.device_id = settings.device_id
        self.firmware = LegacyFirmware(self.device_id) if settings.legacy else ModernFirmware(self.device_id)
        self.observer = observer
        self.phase = PumpPhase.IDLE
        self.pending: Order | None = None
        self.infusion: Infusion | None = None
        self.active_faults: set[str] = set()
        self.seen_commands: deque[str] = deque(maxlen=SEEN_COMMANDS)
        self.sent: list[Message] = []  # the latest messages, for scenarios that replay or reorder them
        self.hold_next: str = ""  # a topic kind whose next message waits for the one after it
        self.held: Message | None = None
        self.changed = asyncio.Event()
        self.link = PumpLink(self.firmware.link_options(), broker,
                             on_connected=self._on_connected, on_message=self._on_message)  # fmt: skip
        self._tasks: set[asyncio.Task] = set()

    # --- wire -------------------------------------------------------------------------------------
    def send(self, *messages: Message) -> None:
        """Publish messages in order (a held message goes out after the next one of its kind)."""
        for message in messages:
            kind = message.topic.rsplit("/", 1)[-1]
            if self.hold_next and kind == self.hold_next and self.held is None:
                self.held = message
                continue
            self._publish(message)
            if self.held is not None and kind == self.held.topic.rsplit("/", 1)[-1]:
                held, self.held, self.hold_next = self.held, None, ""
                self._publish(held)

    def _publish(self, message: Message) -> None:
        self.link.publish(message)
        self.sent = [*self.sent[-20:], message]
        if self.observer:
            self.observer(f"-> {message.readable()}")

    def _on_connected(self) -> None:
        self.link.subscribe(topics.commands_topic(self.device_id), qos=1)
        logger.info("pump connected", extra={"device_id": self.device_id})
        self.send(*self.firmware.connected())
        self._notify()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.observer:
            self.observer(f"<- {topic} {payload.decode(errors='replace')}")
        try:
            envelope = command_envelope_parse(payload)
        except EnvelopeUnreadable as exc:
            logger.warning("unreadable command: %s", exc, extra={"device_id": self.device_id})
            return
        command, body, command_id = envelope.command, envelope.payload, envelope.command_id
        if command_id and command_id in self.seen_commands:
            return  # a QoS 1 redelivery
        self.seen_commands.append(command_id)
        if self.firmware.honours_expiry and envelope.is_expired():
            logger.info("ignored expired %s", command, extra={"device_id": self.device_id, "command_id": command_id})
            self._say(f"ignored {command}: expired at {envelope.expires_at}")
            return
        self.handle_command(command, body)

    def _say(self, text: str) -> None:
        if self.observer:
            self.observer(f"   {text}")

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            action()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- commands from the server ------------------------------------------------------------------
    def handle_command(self, command: str, body: dict) -> None:
        """Apply one server command: START/PAUSE/RESUME/STOP_INFUSION."""
        handlers = {"START_INFUSION": self._start_command, "PAUSE_INFUSION": lambda b: self.pause(),
                    "RESUME_INFUSION": lambda b: self.resume(), "STOP_INFUSION": lambda b: self.stop()}  # fmt: skip
        handler = handlers.get(command)
        if handler is None:
            logger.warning("unknown command %s", command, extra={"device_id": self.device_id})
            return
        if command != "START_INFUSION" and not self._is_about_what_it_does(body):
            mine = self._infusion_id() or (self.pending.infusion_id if self.pending else "") or "none"
            logger.info("ignored %s of infusion %s (the pump's: %s)", command, body.get("infusionId"), mine,
                        extra={"device_id": self.device_id})  # fmt: skip
            self._say(f"ignored {command}: it names infusion {body.get('infusionId')}, the pump's is {mine}")
            return
        handler(body)

    def _is_about_what_it_does(self, body: dict) -> bool:
        """Whether a PAUSE, RESUME or STOP names the infusion this pump has (running, paused, or the order on its
        confirm screen, which a STOP clears): a modern pump acts only on such a one, and says nothing of another (the
        server's deadline ends it failed, as a command the pump did not carry out). One naming none (`null`: the
        server's Stop of a pump infusing without an order) is about whatever it does. The original firmware knows no
        infusion ids: it acts on any."""
        named = body.get("infusionId")
        if self.firmware.legacy or not named:
            return True
        return named in (self._infusion_id(), self.pending.infusion_id if self.pending else None)

    def _start_command(self, body: dict) -> None:
        try:
            order = Order.from_payload(body)
        except OrderError as exc:
            logger.warning("bad START_INFUSION: %s", exc, extra={"device_id": self.device_id})
            return
        if self.phase != PumpPhase.IDLE:
            self._say(f"busy ({self.phase}): START {order.infusion_id} refused")
            if not self.firmware.legacy:  # the original ignores a START while busy
                doing = "" if self.phase == PumpPhase.AWAITING_CONFIRMATION else self.phase.value
                self.send(*self.firmware.refused_busy(order, doing, self._infusion_id()))
            return
        self.pending, self.phase = order, PumpPhase.AWAITING_CONFIRMATION
        self.send(*self.firmware.received_start(order))
        if self.settings.auto_accept or (self.settings.auto and not self.firmware.legacy):
            self._later(self.settings.confirm_delay_s, lambda: self.accept(order.infusion_id))
        self._notify()

    # --- the pump's own screen ---------------------------------------------------------------------
    def accept(self, infusion_id: str | None = None) -> bool:
        """Accept the pending START: confirm with the read-back and start pumping."""
        order = self.pending
        if self.phase != PumpPhase.AWAITING_CONFIRMATION or order is None:
            return False
        if infusion_id is not None and order.infusion_id != infusion_id:
            return False  # a newer START replaced it
        self.infusion, self.pending, self.phase = Infusion(order), None, PumpPhase.RUNNING
        self.send(*self.firmware.accepted(self.infusion))
        self._notify()
        return True

    def reject(self) -> bool:
        """Reject the pending START at the pump."""
        if self.phase != PumpPhase.AWAITING_CONFIRMATION or self.pending is None:
            return False
        order, self.pending, self.phase = self.pending, None, PumpPhase.IDLE
        self.send(*self.firmware.rejected(order))
        self._notify()
        return True

    def pause(self, *, manual: bool = False) -> bool:
        """Pause a running infusion (from the server, or `manual` at the pump's screen)."""
        if self.phase != PumpPhase.RUNNING or self.infusion is None:
            return False
        self.phase = PumpPhase.PAUSED
        self._report_change("MANUAL_PAUSE", "paused", manual)
        return True

    def resume(self, *, manual: bool = False) -> bool:
        """Resume a paused infusion, unless a condition that paused it is still present."""
        blocking = [name for name in self.active_faults if fault_named(name).pauses]
        if self.phase != PumpPhase.PAUSED or self.infusion is None or blocking:
            if blocking:
                self._say(f"cannot resume while {', '.join(sorted(blocking))}")
            return False
        self.phase = PumpPhase.RUNNING
        self._report_change("MANUAL_RESUME", "running", manual)
        return True

    def stop(self, *, manual: bool = False) -> bool:
        """Stop the infusion (or clear the confirm screen of a START that will not come)."""
        if self.phase == PumpPhase.AWAITING_CONFIRMATION:
            self.pending, self.phase = None, PumpPhase.IDLE
            self.send(self.firmware.status("idle"))
        elif self.phase in (PumpPhase.RUNNING, PumpPhase.PAUSED) and self.infusion is not None:
            self.phase = PumpPhase.IDLE
            self._report_change("MANUAL_STOP", "stopped", manual)
            self.infusion = None
            self.send(self.firmware.status("idle"))
        else:
            return False
        self._notify()
        return True

    def _report_change(self, action: str, status: str, manual: bool) -> None:
        infusion_id = self.infusion.order.infusion_id if self.infusion else ""
        if manual:
            self.send(*self.firmware.action(action, infusion_id, status))
        else:
            self.send(self.firmware.status(status, infusionId=infusion_id))
        self._notify()

    def complete(self) -> bool:
        """Finish now (the rest delivered as if pumped): final progress, completion, idle."""
        if self.phase not in (PumpPhase.RUNNING, PumpPhase.PAUSED) or self.infusion is None:
            return False
        infusion, self.infusion, self.phase = self.infusion, None, PumpPhase.IDLE
        infusion.finish()
        self.send(*self.firmware.completed(infusion))
        self._notify()
        if self.settings.free_run is not None:
            self._later(self.settings.confirm_delay_s, self._free_run_start)
        return True

    def raise_fault(self, name: str) -> None:
        """Report an alarm condition; occlusion, air and an open door pause the pump."""
        fault = fault_named(name)
        self.active_faults.add(fault.type)
        if fault.type == "battery_low":
            self.firmware.battery_level = LOW_BATTERY_LEVEL
        if fault.pauses and self.phase == PumpPhase.RUNNING:
            self.phase = PumpPhase.PAUSED
        self.send(self.firmware.error(fault, self._infusion_id(), self.phase.value))
        if fault.pauses and self.phase == PumpPhase.PAUSED:
            self.send(self.firmware.status("paused", infusionId=self._infusion_id()))
        self._notify()

    def clear_fault(self, name: str) -> None:
        """Report that a condition is gone; the pump stays paused until someone resumes it."""
        fault = fault_named(name)
        self.active_faults.discard(fault.type)
        if fault.type == "battery_low":
            self.firmware.battery_level = 100
        self.send(self.firmware.error(fault, self._infusion_id(), self.phase.value, wire_type=cleared_type(fault.type)))
        self._notify()

    def _infusion_id(self) -> str:
        return self.infusion.order.infusion_id if self.infusion else ""

    def report_status(self) -> None:
        """Publish the pump's current status."""
        status = {PumpPhase.AWAITING_CONFIRMATION: "idle"}.get(self.phase, self.phase.value)
        self.send(self.firmware.status(status, infusionId=self._infusion_id()))

    def report_progress(self) -> None:
        """Publish progress now (nothing when idle)."""
        if self.infusion is not None:
            self.send(*self.firmware.progress(self.infusion, self.phase.value))

    # --- the clock ---------------------------------------------------------------------------------
    def tick(self, real_seconds: float) -> None:
        """Advance a running infusion by `real_seconds` × speed; publish progress, bolus and completion."""
        if self.phase != PumpPhase.RUNNING or self.infusion is None:
            return
        infusion = self.infusion
        infusion.advance(real_seconds * self.settings.speed / 60.0)
        if infusion.done:
            self.complete()
            return
        self.send(*self.firmware.progress(infusion))
        if infusion.bolus_done and infusion.order.bolus_ml > 0 and not infusion.bolus_reported:
            infusion.bolus_reported = True
            self.send(*self.firmware.bolus_completed(infusion))

    def _free_run_start(self) -> None:
        """Start the demo infusion at the pump's own screen: an infusion without an order, named by an id of the
        pump's own (never empty, never one of the server's `inf_…`), with no confirmation (no START was answered)."""
        order = self.settings.free_run
        if order is not None and self.phase == PumpPhase.IDLE:
            own = replace(order, infusion_id=f"{OWN_INFUSION_PREFIX}{uuid.uuid4().hex[:16]}")
            self.infusion, self.pending, self.phase = Infusion(own), None, PumpPhase.RUNNING
            self.send(*self.firmware.started_at_pump(self.infusion))
            self._notify()

    async def run(self) -> None:
        """Connect and tick on this pump's phase until cancelled, then disconnect cleanly."""
        self.link.start()
        if self.settings.free_run is not None:
            self._later(self.settings.phase_s, self._free_run_start)
        loop = asyncio.get_running_loop()
        interval = self.settings.progress_interval_s
        next_tick = loop.time() + self.settings.phase_s + interval
        try:
            while True:
                await asyncio.sleep(max(next_tick - loop.time(), 0))
                self.tick(interval)
                next_tick += interval
        finally:
            for task in list(self._tasks):
                task.cancel()
            self.link.close()
            await self.link.wait_closed()
