"""Which progress reports say the pump delivers the session on it: the one choice the resume and the read-back share.

A report saying `running` does. One without a `status` (optional in the contract) does on a session that is not
paused; about a paused session it does only when its delivered volume rose above the pump's previous report
(`delivered_more`): that is what resumes the session (`status.progress_resumed_apply`), and a statusless report that
did not resume it is a paused pump reporting, not one running at the rate it gives (a paused pump's `flowRate` 0 is
no "it reports 0 mL/h" mismatch: review 19, lead 4).
"""

from collections.abc import Sequence

from protocol.schemas import DevicePayload


def delivered_more(before: dict | None, report: DevicePayload) -> bool:
    """Whether `report`'s delivered volume is above the one in `before` (the pump's previous progress)."""
    earlier = (before or {}).get("deliveredVolumeMl")
    now = report.deliveredVolumeMl
    return _is_volume(earlier) and _is_volume(now) and now > earlier


def running_rates(
    reports: Sequence[DevicePayload], *, before: dict | None, paused_before: bool, paused_after: bool
) -> list[float | None]:
    """The `flowRate`s of the `reports` (about the session on the pump, in arrival order) that say it runs.

    `before` is the pump's progress before them; `paused_before`/`paused_after`: the session was paused before them,
    and still is after them (none resumed it). A statusless report about a session still paused is not running; in a
    batch that resumed it, the statusless reports before the first that delivered more (or a `running` one) are not.
    """
    paused = paused_before
    rates = []
    for report in reports:
        resumes = report.status == "running" or (report.status is None and delivered_more(before, report))
        if resumes and not paused_after:
            paused = False
        if report.status == "running" or (report.status is None and not paused):
            rates.append(report.flowRate)
        if _is_volume(report.deliveredVolumeMl):
            before = {"deliveredVolumeMl": report.deliveredVolumeMl}
    return rates


def _is_volume(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
