"""`manage.py simulate_pump`: interactive, automatic, legacy-firmware, fleet and scripted pumps over MQTT."""

import asyncio
import logging
from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from protocol.topics import DEVICE_ID_RE
from realtime.simulator.device import PumpSettings, SimulatedPump
from realtime.simulator.fleet import DEMO_ORDER, fleet_ids, fleet_settings
from realtime.simulator.interactive import stdin_lines
from realtime.simulator.runner import simulate, simulate_interactive, simulate_scenario
from realtime.simulator.scenario import ScenarioError, load_scenario

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Simulate infusion pumps over MQTT (see docs/simulator.md)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("device_ids", nargs="*", help="Pump ids (one for the prompt; several make a fleet).")
        parser.add_argument("--auto", action="store_true", help="Confirm STARTs and run infusions by itself.")
        parser.add_argument("--legacy", action="store_true", help="Behave like the original firmware.")
        parser.add_argument("--auto-accept", action="store_true", help="Legacy: accept STARTs without a person.")
        parser.add_argument("--speed", type=float, default=1.0, help="Simulated seconds per real second.")
        parser.add_argument("--confirm-delay", type=float, default=1.0, help="Seconds before confirming a START.")
        parser.add_argument("--fleet", type=int, default=0, help="Simulate N pumps (SIM_0001…) on one loop.")
        parser.add_argument("--prefix", default="SIM_", help="Id prefix of --fleet pumps.")
        parser.add_argument("--rate", type=float, default=1.0, help="Progress messages per second per pump.")
        parser.add_argument("--free-run", action="store_true", help="Run demo infusions without a server (load).")
        parser.add_argument("--scenario", help="A scenario file of timed steps (scenarios/*.json).")
        parser.add_argument("--duration", type=float, default=None, help="Stop after this many seconds.")

    def handle(self, *args, device_ids: list[str], **options) -> None:
        ids = device_ids or (fleet_ids(options["fleet"], options["prefix"]) if options["fleet"] else [])
        if not ids:
            raise CommandError("name a pump (e.g. PUMP_0001) or use --fleet N")
        bad = [device_id for device_id in ids if not DEVICE_ID_RE.match(device_id)]
        if bad:
            raise CommandError(f"not a valid pump id: {', '.join(bad)}")
        if options["speed"] <= 0 or options["rate"] <= 0:
            raise CommandError("--speed and --rate must be positive")
        base = PumpSettings(
            device_id=ids[0], legacy=options["legacy"], auto=options["auto"] or options["fleet"] > 0,
            auto_accept=options["auto_accept"], confirm_delay_s=options["confirm_delay"], speed=options["speed"],
            free_run=DEMO_ORDER if options["free_run"] else None,
        )  # fmt: skip
        broker = settings.MQTT
        logger.info("simulating %d pump(s) against %s:%s", len(ids), broker["HOST"], broker["PORT"])
        if options["scenario"]:
            self._scenario(base, broker, options)
        elif len(ids) > 1 or options["auto"] or options["free_run"]:
            pumps = [SimulatedPump(one, broker) for one in fleet_settings(ids, base, rate_hz=options["rate"])]
            self.stdout.write(f"Simulating {len(pumps)} pump(s); Ctrl-C to stop.")
            asyncio.run(simulate(pumps, duration_s=options["duration"]))
        else:
            pump = SimulatedPump(base, broker, observer=self._write)
            asyncio.run(simulate_interactive(pump, self._write, stdin_lines()))

    def _scenario(self, base: PumpSettings, broker: dict, options: dict) -> None:
        try:
            scenario = load_scenario(options["scenario"])
        except ScenarioError as exc:
            raise CommandError(str(exc)) from exc
        defaults = scenario.pump
        settings = replace(
            base, auto=True, legacy=base.legacy or bool(defaults.get("legacy")),
            auto_accept=base.auto_accept or bool(defaults.get("autoAccept")),
        )  # fmt: skip
        self.stdout.write(f"Scenario: {scenario.description}")
        pump = SimulatedPump(settings, broker, observer=self._write)
        if not asyncio.run(simulate_scenario(pump, scenario, duration_s=options["duration"])):
            raise CommandError("the scenario did not finish (a wait timed out)")
        self.stdout.write("Scenario finished.")

    def _write(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
