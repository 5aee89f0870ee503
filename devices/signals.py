"""Signals the services send for what other apps act on (the realtime server's rights re-check), and the one the
pumps' queryset sends for the models' move guard."""

from django.dispatch import Signal

# A pump moved to another ward (or out of its deleted ward), sent inside the edit's transaction: who may watch it
# changed. Arguments: `device`.
pump_ward_changed = Signal()

# Pumps' wards written by a queryset (`update()`, `bulk_update()`, an upsert's `bulk_create()`), which sends no
# `pre_save`: sent after the write, inside its transaction, so a receiver's refusal takes the write back. Arguments:
# `moves`, each a pump as stored before (its row locked) and the ward id written to it.
pump_wards_written = Signal()
