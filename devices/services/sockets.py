"""The per-principal socket cap across Daphne processes: each open socket is a `LiveSocket` row.

A socket is admitted only while its principal holds fewer than the cap in fresh rows (of any process); its
row goes when it closes. Two sockets admitted at the same instant on two processes can both pass the count
(the cap may be exceeded by the sockets opened in that instant, never by more); a process that dies leaves
rows whose `seen_at` stops moving, so they stop counting after `stale_before` and are deleted.
"""

from datetime import datetime

from django.db import transaction

from devices.models import LiveSocket


def live_socket_open(
    *, process: str, conn_id: str, principal: str, cap: int, now: datetime, fresh_after: datetime
) -> bool:
    """Record a socket unless `principal` already holds `cap` fresh ones anywhere (cap 0: no cap)."""
    with transaction.atomic():
        held = LiveSocket.objects.filter(principal=principal, seen_at__gte=fresh_after).count()
        if cap and held >= cap:
            return False
        LiveSocket.objects.create(process=process, conn_id=conn_id, principal=principal, opened_at=now, seen_at=now)
    return True


def live_socket_close(*, process: str, conn_id: str) -> None:
    """Forget a closed socket."""
    LiveSocket.objects.filter(process=process, conn_id=conn_id).delete()


def live_sockets_touch(*, process: str, now: datetime, stale_before: datetime) -> None:
    """This process's sockets are alive; delete the rows of processes that stopped touching theirs."""
    LiveSocket.objects.filter(process=process).update(seen_at=now)
    LiveSocket.objects.filter(seen_at__lt=stale_before).delete()
