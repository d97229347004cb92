"""The worker's step for one frame, as a pure function of injected parts.

Stale frames are dropped before any work, a frame that cannot be decoded is bad, an exception
from inference or publishing is an error (or nothing, while the node shuts down); whatever
happens, the step returns and the worker goes on with the next frame.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class Outcome(enum.Enum):
    PUBLISHED = "published"
    STALE = "dropped"  # older than max_frame_age when the worker took it
    BAD = "bad"  # could not be decoded
    ERROR = "errors"  # inference or publishing raised
    SHUTDOWN = "shutdown"  # raised while the node closes: not the frame's fault
    UNSUBSCRIBED = "unsubscribed"  # decoded (so checked), not inferred: no output has a reader


@dataclass(frozen=True)
class Served:
    outcome: Outcome
    detail: str = ""  # the exception's text for BAD and ERROR
    backend_s: float = 0.0  # PUBLISHED: the backend's own time for this frame


def serve_frame(age_s: float, max_age_s: float, decode: Callable[[], np.ndarray],
                process: Callable[[np.ndarray], float | None],
                closing: Callable[[], bool]) -> Served:
    """Runs one frame (``process`` returns the backend's time, None when no output has a
    reader); no exception leaves this function."""
    if age_s > max_age_s:
        return Served(Outcome.STALE)
    try:
        rgb = decode()
    except Exception as exc:  # noqa: BLE001 - FrameError, or any decoder fault: a bad frame
        return Served(Outcome.BAD, str(exc))
    try:
        backend_s = process(rgb)
    except Exception as exc:  # noqa: BLE001 - a backend fault must not end the worker
        if closing():  # shutting down: the backend or its context went first
            return Served(Outcome.SHUTDOWN)
        return Served(Outcome.ERROR, f"{type(exc).__name__}: {exc}")
    if backend_s is None:
        return Served(Outcome.UNSUBSCRIBED)
    return Served(Outcome.PUBLISHED, backend_s=backend_s)
