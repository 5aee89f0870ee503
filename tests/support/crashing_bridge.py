"""`python -m tests.support.crashing_bridge NAME`: the real bridge, except that applying a message holding
CRASH_MARKER kills its process with SIGKILL (a crash no `except` can catch), for the poison tests."""

import os
import signal
import sys

import django

CRASH_MARKER = "take-the-bridge-down"


def main() -> None:
    django.setup()
    from django.core.management import call_command

    from realtime.bridge import ingest

    real_apply = ingest.pump_report_apply

    def apply_or_crash(**fields):
        if CRASH_MARKER.encode() in fields["report"].model_dump_json().encode():
            os.kill(os.getpid(), signal.SIGKILL)
        return real_apply(**fields)

    ingest.pump_report_apply = apply_or_crash
    call_command("run_mqtt_bridge", "--name", sys.argv[1])


if __name__ == "__main__":
    main()
