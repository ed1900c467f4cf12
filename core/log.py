"""structlog, configured once: console output on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure(level: str = "info", json: bool | None = None, stream=None) -> None:
    """Set up structlog for the whole process; later calls are ignored."""
    global _configured
    if _configured:
        return
    _configured = True
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


def get_logger(**context):
    """A logger with context bound, e.g. get_logger(pod_id=...)."""
    return structlog.get_logger("hypercontainer").bind(**context)
