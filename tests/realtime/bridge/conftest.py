"""The bridge worker tests' shared fixtures."""

from tests.support.worker_clocks import clocks  # noqa: F401 (a fixture: the worker's clocks moved by a test)
