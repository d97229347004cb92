"""The package logs through stdlib ``logging`` under one logger, ``seg_perception``.

Library code calls ``logging.getLogger(__name__)`` and never takes a log callback. Whoever runs
it decides where the lines go: the node forwards them to its rclpy logger (``forwarded``), the
command line prints them (``cli``), a caller that wants them as text collects them
(``collected``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol

ROOT = "seg_perception"


class Sink(Protocol):
    """What rclpy's logger offers (RcutilsLogger), by level."""

    def debug(self, message: str) -> object: ...
    def info(self, message: str) -> object: ...
    def warning(self, message: str) -> object: ...
    def error(self, message: str) -> object: ...
    def fatal(self, message: str) -> object: ...


class Forward(logging.Handler):
    """Sends each record to the sink's method of the same level."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self.sink.fatal(msg)
            elif record.levelno >= logging.ERROR:
                self.sink.error(msg)
            elif record.levelno >= logging.WARNING:
                self.sink.warning(msg)
            elif record.levelno >= logging.INFO:
                self.sink.info(msg)
            else:
                self.sink.debug(msg)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests and tools swap it), not the one at start."""

    @property  # a read-only view of sys.stderr
    def stream(self) -> Any:  # noqa: ANN401 - a text stream
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def print_to_stderr() -> None:
    """The command line's setting: the package's info lines on stderr, installed once."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        logger.addHandler(_CurrentStderr())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


@contextlib.contextmanager
def forwarded(sink: Sink, level: int = logging.INFO) -> Iterator[Forward]:
    """The package's records at ``level`` and above go to ``sink`` while the block runs."""
    logger = logging.getLogger(ROOT)
    handler = Forward(sink)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one destination: not also the root logger's stderr handler
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class _Collect:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def _add(self, prefix: str, message: str) -> None:
        self.into.append(prefix + message)

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        self._add("", message)

    def warning(self, message: str) -> None:
        self._add("WARN ", message)

    def error(self, message: str) -> None:
        self._add("ERROR ", message)

    def fatal(self, message: str) -> None:
        self._add("ERROR ", message)


@contextlib.contextmanager
def collected(this_thread: bool = False) -> Iterator[list[str]]:
    """The package's info-and-above lines as text (warnings start with ``WARN``); with
    ``this_thread``, only those logged by the calling thread (loggers are process-wide)."""
    lines: list[str] = []
    me = threading.get_ident()
    with forwarded(_Collect(lines)) as handler:
        if this_thread:
            handler.addFilter(lambda record: record.thread == me)
        yield lines
