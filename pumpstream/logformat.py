"""`LOG_FORMAT=json`: one JSON object per line, with the structured fields a record carries."""

import json
import logging
from datetime import UTC, datetime

STRUCTURED_FIELDS = ("device_id", "infusion_id", "command_id", "topic", "reason", "user")


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON; `extra={...}` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in STRUCTURED_FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
