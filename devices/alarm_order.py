"""Which of a pump's (or a ward's) active alarms comes first: the one a card shows, the one the station's banner and
tab title name, the top of every alarm list. One rule, docs/clinical-rules.md "Which alarm comes first";
`static/js/alarm_order.js` is its twin in the pages, which re-sort on every live alarm change.

Highest priority first. Within a priority the unanswered (unacknowledged) come before the acknowledged: the card
shows one alarm, and a newer acknowledged one made it read "(acknowledged)", outlined and still, while an older one of
the same priority sounded unanswered (review 32, finding 3). Among the unanswered the higher escalation tier comes
first: the alarm the hospital's own rules already called overdue keeps the banner and title, the only line read from
across the room, when a newer one of its priority comes (finding 5). Then the newest, as before; the row id settles
a tie, so every screen and the server agree.
"""

from collections.abc import Iterable

from devices.models import Alarm
from devices.states import ALARM_PRIORITY_RANK

AlarmUrgency = tuple[int, bool, int, float, int]


def alarm_urgency(alarm: Alarm) -> AlarmUrgency:
    """`alarm`'s sort key in that order (the most urgent sorts first); an acknowledged alarm's tier counts for
    nothing: acknowledging stops its escalation."""
    answered = alarm.acknowledged_at is not None
    tier = 0 if answered else alarm.escalation_level or 0
    rank = ALARM_PRIORITY_RANK.get(alarm.priority, 0)
    return (-rank, answered, -tier, -alarm.raised_at.timestamp(), -(alarm.pk or 0))


def alarms_most_urgent_first(alarms: Iterable[Alarm]) -> list[Alarm]:
    """`alarms` in the order every screen shows them (`alarm_urgency`)."""
    return sorted(alarms, key=alarm_urgency)
