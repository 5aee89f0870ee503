"""The sockets open on every Daphne process, so a per-user cap holds across processes."""

from django.db import models


class LiveSocket(models.Model):
    """One open Socket.IO or Channels socket of one principal on one Daphne process.

    Written when a socket is admitted and deleted when it closes; its process touches `seen_at` at every
    rights re-check (`RIGHTS_RECHECK_S`), so the rows of a process that died stop counting after a few rounds
    and are deleted by the next process's round.
    """

    process = models.CharField(max_length=64, help_text="host:pid:nonce of the Daphne process holding it.")
    conn_id = models.CharField(max_length=128, help_text="The Socket.IO sid or Channels channel name.")
    principal = models.CharField(max_length=80, help_text="Who it counts against: user:<pk> or account:<pk>.")
    opened_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["process", "conn_id"], name="live_socket_unique")]
        indexes = [models.Index(fields=["principal", "seen_at"]), models.Index(fields=["seen_at"])]
