"""`LOG_FORMAT=json`: one JSON object per line, with the structured fields a record carries; and the filter that keeps
`/readyz`'s "not ready" answers out of the error log."""

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


class ReadinessAnswerFilter(logging.Filter):
    """Drop Django's ERROR record of a 503 from `/readyz`: "not ready" is the endpoint's answer, asked every half
    second while `make run` starts (scripts/after_bridge.sh) and by every orchestrator's probe, not a server error;
    `ops.readyz` logs it itself, at INFO, naming the failing checks. Any other 5xx stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (
            record.name == "django.request"
            and getattr(record, "status_code", None) == 503
            and getattr(request, "path", None) == "/readyz"
        )
