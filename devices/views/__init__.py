"""Clinicians' pages (`pages`) and the JSON endpoints they call (`api`)."""
