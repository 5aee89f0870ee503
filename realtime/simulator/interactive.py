"""The interactive prompt: the original simulator's commands, plus the buttons and faults of a real pump."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable

from realtime.simulator.device import SimulatedPump

HELP = """\
Commands (as if pressed on the pump's own screen):
  start            accept the pending START_INFUSION and confirm it
  reject           reject the pending START_INFUSION
  pause | resume | stop
  complete         finish the infusion now
  progress         publish progress now
  status           publish the current status (and show it here)
  error [TYPE]     report an alarm: bubble_detected, occlusion, door_open, battery_low, device_error
  clear TYPE       report that it is gone (bubble_detected -> bubble_cleared)
  offline          drop the connection without a goodbye (the broker publishes the Last Will)
  online           connect again
  help | quit"""


class PumpPrompt:
    """Executes one typed line against a pump and writes what happened."""

    def __init__(self, pump: SimulatedPump, write: Callable[[str], None]) -> None:
        self.pump = pump
        self.write = write

    def execute(self, line: str) -> bool:
        """Run one command line; False means quit."""
        words = line.strip().split()
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        if name in ("quit", "exit"):
            return False
        actions: dict[str, Callable[[], object]] = {
            "help": lambda: self.write(HELP),
            "start": self.pump.accept, "accept": self.pump.accept, "reject": self.pump.reject,
            "pause": lambda: self.pump.pause(manual=True), "resume": lambda: self.pump.resume(manual=True),
            "stop": lambda: self.pump.stop(manual=True), "complete": self.pump.complete,
            "progress": self.pump.report_progress, "status": self._status,
            "error": lambda: self.pump.raise_fault(args[0] if args else "device_error"),
            "clear": lambda: self.pump.clear_fault(args[0]) if args else self.write("usage: clear TYPE"),
            "offline": self.pump.link.drop, "online": self.pump.link.start,
        }  # fmt: skip
        action = actions.get(name)
        if action is None:
            self.write(f"unknown command {name!r}; type help")
        elif action() is False:
            self.write(f"{name}: not possible now (pump is {self.pump.phase})")
        return True

    def _status(self) -> None:
        pump = self.pump
        infusion = pump.infusion
        detail = f", {infusion.delivered_ml:.2f} of {infusion.order.planned_volume_ml:g} mL" if infusion else ""
        faults = f", alarms: {', '.join(sorted(pump.active_faults))}" if pump.active_faults else ""
        connected = "connected" if pump.link.connected else "disconnected"
        self.write(f"{pump.device_id}: {pump.phase}{detail}{faults}; {connected}")
        pump.report_status()


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed on standard input, read without blocking the event loop (a tty or a pipe)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    fd = sys.stdin.fileno()
    try:
        loop.add_reader(fd, lambda: queue.put_nowait(os.read(fd, 4096)))
    except (PermissionError, OSError):  # a regular file: reading never blocks
        for line in sys.stdin:
            yield line
        return
    buffer = b""
    try:
        while True:
            chunk = await queue.get()
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if buffer:
            yield buffer.decode(errors="replace")
    finally:
        loop.remove_reader(fd)


async def run_prompt(prompt: PumpPrompt, lines: AsyncIterator[str]) -> None:
    """Execute lines until `quit` or the end of input."""
    prompt.write(f"Simulating {prompt.pump.device_id}; type help for commands.")
    async for line in lines:
        if not prompt.execute(line):
            break
