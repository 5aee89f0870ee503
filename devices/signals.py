"""Signals the services send for what other apps act on (the realtime server's rights re-check)."""

from django.dispatch import Signal

# A pump moved to another ward (or out of its deleted ward), sent inside the edit's transaction: who may watch it
# changed. Arguments: `device`.
pump_ward_changed = Signal()
