"""A modern pump acts on a PAUSE, RESUME or STOP only when it names the infusion the pump has (running, paused, or the
order on its confirm screen, which a STOP clears); one naming another infusion is not carried out, and the pump says
nothing of it: the server's deadline ends it `failed` (`command_not_carried_out` for a STOP or PAUSE), as the contract
says of a pump that did not act. One naming none (`infusionId: null`, the server's Stop of a pump infusing without an
order) is about whatever the pump does. The original firmware knows no infusion ids and acts on any (review 33,
"noticed": the simulator ignored `infusionId`, so a test of the server's wrong-infusion handling ran on a pump that
stopped whatever it was told to)."""

from realtime.simulator.pump import PumpPhase

ORDER = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15}


def running(make_pump, infusion_id: str = "A", **settings):
    pump = make_pump("PUMP_0001", **settings)
    pump.handle_command("START_INFUSION", {"infusionId": infusion_id, **ORDER})
    pump.accept()
    return pump


def statuses_after(pump, command: str, infusion_id: str | None) -> list[str]:
    first = len(pump.link.published)
    pump.handle_command(command, {"infusionId": infusion_id, "reason": "test"})
    return [m.payload.get("status") for m in pump.link.published[first:]]


def test_pause_resume_and_stop_of_another_infusion_are_not_carried_out(make_pump):
    pump = running(make_pump)
    assert statuses_after(pump, "PAUSE_INFUSION", "B") == [] and pump.phase == PumpPhase.RUNNING, (
        "a PAUSE naming infusion B paused the pump running infusion A"
    )
    assert statuses_after(pump, "PAUSE_INFUSION", "A") == ["paused"]
    assert statuses_after(pump, "RESUME_INFUSION", "B") == [] and pump.phase == PumpPhase.PAUSED, (
        "a RESUME naming infusion B resumed infusion A"
    )
    assert statuses_after(pump, "RESUME_INFUSION", "A") == ["running"]
    assert statuses_after(pump, "STOP_INFUSION", "B") == [] and pump.phase == PumpPhase.RUNNING, (
        "a STOP naming infusion B stopped infusion A"
    )
    assert statuses_after(pump, "STOP_INFUSION", "A") == ["stopped", "idle"] and pump.infusion is None


def test_a_stop_of_an_older_order_leaves_the_newer_one_on_the_confirm_screen(make_pump):
    pump = make_pump("PUMP_0001")
    pump.handle_command("START_INFUSION", {"infusionId": "B", **ORDER})
    assert statuses_after(pump, "STOP_INFUSION", "A") == [] and pump.phase == PumpPhase.AWAITING_CONFIRMATION, (
        "the STOP clearing order A's confirm screen cleared order B's"
    )
    assert statuses_after(pump, "STOP_INFUSION", "B") == ["idle"] and pump.pending is None


def test_a_stop_naming_no_infusion_stops_what_the_pump_runs(make_pump):
    pump = running(make_pump)
    assert statuses_after(pump, "STOP_INFUSION", None) == ["stopped", "idle"], (
        "the server's Stop of a pump infusing without an order (infusionId null) must stop it"
    )


def test_the_original_firmware_acts_on_any_infusion_id(make_pump):
    pump = running(make_pump, legacy=True)
    pump.handle_command("PAUSE_INFUSION", {"infusionId": "B"})
    assert pump.phase == PumpPhase.PAUSED, "the original firmware knows no infusion ids: it pauses what it runs"
