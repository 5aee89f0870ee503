"""Hostile pumps, networks and processes (issue 15): each reproduced attack, through real processes."""
