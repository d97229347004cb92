"""The project's errors: one base to catch, subclasses that carry what a caller reports.

Each is also a ValueError or RuntimeError, so code written against the standard exceptions keeps
working.
"""

from __future__ import annotations


class SegPerceptionError(Exception):
    """Base of every error this package raises on purpose (the command line prints one line)."""


class ConfigError(SegPerceptionError, ValueError):
    """A node parameter with a value that cannot work; the node exits 2 with this one line."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"parameter '{param}': {message}")
        self.param = param
        self.message = message


class OptionError(SegPerceptionError, ValueError):
    """A backend option that cannot work here (``option``: backend, precision, threads,
    input_size, dla_core, device, ...); the node reports it as that parameter."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class ModelError(SegPerceptionError, ValueError):
    """A model file that is not a usable seg_perception model (``path`` names it)."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(message)
        self.path = path


class FrameError(SegPerceptionError, ValueError):
    """A frame that cannot be used; the node counts it and keeps serving."""


class BagError(SegPerceptionError, ValueError):
    """A bag that cannot be read (missing topics, unreadable data)."""


class TrainingError(SegPerceptionError, RuntimeError):
    """A training run that cannot go on (its loss or gradients stayed non-finite); the weights
    saved before it are untouched."""
