"""Daemon logging: plain lines for people, or one JSON object a line for log collectors."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Log to stderr (the journal, under systemd) at ``level`` in ``fmt``."""
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int) or level.lower() not in {"debug", "info", "warning", "error"}:
        raise ValueError(f"log_level {level!r} must be one of debug, info, warning, error")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log_format {fmt!r} must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
