"""LOG_FORMAT=json: one JSON object per line with the structured fields."""

import json
import logging

from pumpstream.logformat import JsonFormatter


def test_json_formatter_keeps_structured_fields():
    record = logging.LogRecord("realtime.bridge", logging.WARNING, __file__, 1, "rejected %s", ("msg",), None)
    record.device_id = "PUMP_0001"
    record.reason = "bad_json"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "rejected msg" and entry["level"] == "WARNING"
    assert entry["device_id"] == "PUMP_0001" and entry["reason"] == "bad_json"
    assert entry["time"].endswith("+00:00"), "log times are UTC"
