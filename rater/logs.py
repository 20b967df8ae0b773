"""Structured logs (structlog): key=value on a terminal, JSON lines with --log-json."""

from __future__ import annotations

import logging
import sys

import structlog

from rater.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard logging module once per process."""
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    for noisy in ("aiokafka", "kafka", "clickhouse_driver"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    renderer: structlog.typing.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound with the module name.

    The module name is passed as an initial value rather than with .bind(): bind() on the lazy
    proxy builds the logger at import time with structlog's default configuration (stdout),
    before configure_logging ran, and module-level loggers would never reach stderr.
    """
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name, module=name)
    return logger
