"""No Mosquitto config the project ships queues QoS 0 messages for an absent client (review 21).

`queue_qos0_messages true` was added for the original firmware's QoS 0 alarms sent while the bridge restarts (review
19) and reverted: on Mosquitto 2.0.11, once 1,000 QoS 0 messages (the in-flight window: `max_inflight_messages` and
the bridge's Receive Maximum) were queued for the bridge's absent session, the broker handed them over on its return
and then delivered no QoS 1 message to the session at all, neither those queued after them nor any published live,
until the bridge reconnected again: a bare subscriber got 5 of 5 QoS 1 messages after 999 queued QoS 0, none after
1,000 (review 21's probe); with the real bridge the loss varied from run to run (1 or 0 of 2 occlusions), so this
guard reads the configs rather than racing the broker. 50 original pumps fill the window in 17 s. docs/protocol.md,
"Retained messages", has the limit this leaves.
"""

import re

from tests.support.broker import CONFIG
from tests.support.processes import ROOT

QUEUE_QOS0 = re.compile(r"^\s*queue_qos0_messages\s+true\b", re.MULTILINE)


def shipped_configs() -> dict[str, str]:
    configs = {str(path.relative_to(ROOT)): path.read_text() for path in (ROOT / "deploy").rglob("*.conf")}
    configs["tests/support/broker.py"] = CONFIG
    return configs


def test_no_shipped_broker_config_queues_qos0_messages():
    configs = shipped_configs()
    assert "deploy/mosquitto/production.conf" in configs and "deploy/mosquitto/dev.conf" in configs, sorted(configs)
    queuing = [name for name, text in configs.items() if QUEUE_QOS0.search(text)]
    assert queuing == [], f"{queuing}: QoS 1 to the bridge stops once 1,000 QoS 0 were queued (Mosquitto 2.0.11)"
