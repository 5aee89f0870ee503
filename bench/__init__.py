"""`make bench`: end-to-end latency, throughput and memory of PumpStream, measured against the broker's floor."""

import os
import time

# The moment the bench's simulated pumps began infusing (epoch seconds), shared by every generator a bench run starts
# (they inherit it): each pump's delivered count is 2 mL/min of real time since, as its order says, so rounds and the
# silences between them never show a count going back or running ahead of the server's clock (`delivery_divergence`
# judges by that clock: a count derived from `seq` looked like a pump ten times too fast and raised 400 alarms).
os.environ.setdefault("BENCH_COUNT_ORIGIN", repr(time.time()))
