"""When the active `delivery_divergence` tells news, and when it restates its figure (review 31, finding 1).

Pure functions of what the session keeps (`InfusionSession.delivery_divergence`, what the alarm said last) and what a
report saw (`devices/services/delivery.py` reads the one and raises the other). The figure they compare is the volume
delivered in all: a divergence beyond the order states it, a count gone back states what was delivered before it plus
the count it went back to; a window off its rate states none (its count is this run's).
"""

from devices.services.delivered_in_all import COUNT_WENT_BACK

BEYOND_PLANNED = "beyond_planned"
FASTER_THAN_RATE = "faster_than_rate"
COUNT_STEP_ML = 0.1  # a pump counts in steps of up to 0.1 mL (`delivery.py`'s window slack): the least margin
# An acknowledged divergence alerts again once the volume delivered in all passes the figure it last told by this
# share of the whole order: twice the pump's own accuracy (about 5 %), so its counting alone never re-alerts; our
# choice, awaiting clinical review (docs/clinical-rules.md). A pump left infusing beyond its order after the alarm was
# acknowledged alerts again at each further tenth of it.
REALERT_SHARE = 0.1
# Its text and details restate the volume delivered in all once the figure they say is this share of the whole order
# behind (at least `COUNT_STEP_ML`): current to 1 %, not a change sent to every screen and the event log at each report.
RESTATE_SHARE = 0.01
ALERTED_ML = "alertedMl"  # in the kept divergence: the volume delivered in all it last told a sounding alarm


def divergence_news(kept: dict, seen: dict, whole_order: float) -> bool:
    """A count gone back again (the pump may give the order once more), or more than the whole order delivered in all
    while the alarm never told more than it (its count that went back, a window off its rate: review 29, finding 1)
    or a further `REALERT_SHARE` of the whole order beyond the figure it last alerted with (review 31, finding 1)."""
    if seen["kind"] == COUNT_WENT_BACK:
        return True
    told = divergence_told_ml(kept)
    return told is None or told <= whole_order or _in_all_ml(seen) >= told + _share(whole_order, REALERT_SHARE)


def divergence_restated(kept: dict, seen: dict, whole_order: float) -> bool:
    """The alarm's figure is `RESTATE_SHARE` of the whole order behind the volume delivered in all, or it said the pump
    still infuses where it completed: its text and details say the current figure, without alerting."""
    stated = _in_all_ml(kept) if kept.get("kind") in (BEYOND_PLANNED, COUNT_WENT_BACK) else None
    completed = (kept.get("status") == "completed") != (seen.get("status") == "completed")
    return stated is None or completed or abs(_in_all_ml(seen) - stated) >= _share(whole_order, RESTATE_SHARE)


def divergence_alerted(seen: dict) -> dict:
    """`seen`, noting the volume delivered in all it tells a sounding alarm (what the next alert's margin counts from);
    a window off its rate is not one delivered in all."""
    return seen if seen["kind"] == FASTER_THAN_RATE else {**seen, ALERTED_ML: _in_all_ml(seen)}


def divergence_told_ml(kept: dict) -> float | None:
    """The volume delivered in all the kept divergence last told a sounding alarm; None for a window off its rate (its
    count is not one delivered in all). One kept before `alertedMl` existed told the figure it states."""
    told = kept.get(ALERTED_ML)
    if isinstance(told, int | float):
        return float(told)
    return _in_all_ml(kept) if kept.get("kind") in (BEYOND_PLANNED, COUNT_WENT_BACK) else None


def _in_all_ml(seen: dict) -> float:
    """The volume delivered in all a divergence states: beyond the order's figure is it; a count gone back's is what
    was delivered before it plus the count it went back to."""
    if seen["kind"] == COUNT_WENT_BACK:
        return round(seen["deliveredBeforeMl"] + seen["deliveredVolumeMl"], 3)
    return seen["deliveredVolumeMl"]


def _share(whole_order: float, share: float) -> float:
    """`share` of the whole order, at least a count's step."""
    return max(COUNT_STEP_ML, whole_order * share)
