"""One log format for the STS and the agent: ``--log-level`` and ``--log-format text|json``.

Every line carries one timestamp style, RFC 3339 / ISO 8601 in UTC with milliseconds
(``2026-11-22T11:28:19.278+00:00``), the same as the audit log's ``time`` field. ``text`` is
``<time> <LEVEL> <logger>: <message>``; ``json`` is one object per line with ``time``, ``level``,
``logger``, ``message`` and the structured fields a caller passed (``code``, ``node``, ``job``,
``step``). Library loggers (httpx, httpcore, alembic, werkzeug, urllib3) stay at WARNING unless
``--log-level debug`` asks for everything: at INFO they echo every request and migration step.
The audit logger (``jobsts.audit``) writes its own JSON lines and is left as it is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import click

from realms.errors import ConfigError

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LIBRARY_LOGGERS = ("httpx", "httpcore", "alembic", "werkzeug", "urllib3", "sqlalchemy", "ldap3")
STRUCTURED_FIELDS = ("code", "node", "job", "step", "realm")
_MARK = "_jobsts_logs"


def iso_time(created: float) -> str:
    """``created`` (epoch seconds) as ISO 8601 UTC with milliseconds (RFC 3339 §5.6)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>``, no colours."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{iso_time(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a message never spans lines (JSON escapes control characters)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in STRUCTURED_FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Configure the root logger once per process (replacing an earlier setup of this module)."""
    if level not in LEVELS:
        raise ConfigError(f"log level {level[:20]!r} is not one of {', '.join(LEVELS)}", field="log_level")
    if fmt not in FORMATS:
        raise ConfigError(f"log format {fmt[:20]!r} is not one of {', '.join(FORMATS)}", field="log_format")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, _MARK, False)] + [handler]
    root.setLevel(level.upper())
    # Why: at INFO these echo every HTTP request (74% of an agent's lines) or migration step.
    library_level = logging.DEBUG if level == "debug" else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


LOG_LEVEL_OPTION = click.option(
    "--log-level",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    envvar="JOBSTS_LOG_LEVEL",
    help="Least severe level logged (env JOBSTS_LOG_LEVEL); debug also shows library loggers.",
)
LOG_FORMAT_OPTION = click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    envvar="JOBSTS_LOG_FORMAT",
    help="text: '<time> <LEVEL> <logger>: <message>'; json: one object per line (env JOBSTS_LOG_FORMAT).",
)
