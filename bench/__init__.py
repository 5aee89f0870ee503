"""`make bench`: end-to-end latency, throughput and memory of PumpStream, measured against the broker's floor."""
