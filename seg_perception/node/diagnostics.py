"""What ``/diagnostics`` says about a window of the node's work: level, message, values.

Pure functions of the window's figures, so every level and message is tested without ROS; the
node only wraps the result in a DiagnosticStatus.
"""

from __future__ import annotations

import enum

from seg_perception.node.stats import WindowReport


class Level(enum.IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels (OK, WARN, ERROR)."""

    OK = 0
    WARN = 1
    ERROR = 2


DROP_WARN_FRACTION = 0.2
"""Dropping this share of the window's input frames (or more) is falling behind."""


def health(r: WindowReport, warn_latency_ms: float, restarted: str | None = None
           ) -> tuple[Level, str]:
    """The window's level and one-line message; the first matching condition wins, worst first."""
    if restarted:
        return Level.ERROR, restarted
    if r.errors:
        return Level.ERROR, f"{r.errors} inference errors"
    if r.input_fps > 0 and r.output_fps == 0 and r.stalled_windows:
        if r.stalled_windows <= 1 and not r.totals.get("published"):
            # A stream's first frames are still in inference when its first window closes.
            return Level.OK, "starting: first frames in inference"
        return Level.ERROR, "receiving images but publishing nothing"
    if r.dropped > 0 and r.dropped >= DROP_WARN_FRACTION * max(r.input_fps * r.period_s, 1):
        return Level.WARN, f"falling behind: dropped {r.dropped} frames"
    if r.latency_p95_ms > warn_latency_ms:
        return Level.WARN, f"p95 latency {r.latency_p95_ms:.0f} ms"
    if r.bad or r.lost or r.never_seen:
        return Level.WARN, f"{r.bad} bad, {r.lost} lost and {r.never_seen} never-seen frames"
    if r.output_fps == 0 and r.unsubscribed:
        return Level.OK, (f"idle: no output has a subscriber ({r.unsubscribed} frames decoded, "
                          "not inferred)")
    if r.input_fps == 0:
        return Level.OK, "waiting for images"
    return Level.OK, "ok"


LOST_UNREPORTED = "n/a (this RMW reports no lost messages)"


def values(r: WindowReport, *, backend: str, precision: str, model: str, grid: str,
           output_resolution: str, lost_reported: bool = True) -> dict[str, str]:
    """The key/value pairs of the status, as strings (diagnostic_msgs/KeyValue). Without the
    RMW's message-lost event a 0 would claim nothing was lost: the values say it is unknown."""
    kv = {
        "backend": backend, "precision": precision, "model": model,
        "input_fps": f"{r.input_fps:.2f}", "output_fps": f"{r.output_fps:.2f}",
        "latency_p50_ms": f"{r.latency_p50_ms:.2f}",
        "latency_p95_ms": f"{r.latency_p95_ms:.2f}",
        "backend_p50_ms": f"{r.backend_p50_ms:.2f}",
        "node_overhead_p50_ms": f"{r.overhead_p50_ms:.2f}",
        "dropped": str(r.dropped), "bad_frames": str(r.bad), "lost": str(r.lost),
        "never_seen": str(r.never_seen), "unsubscribed": str(r.unsubscribed),
        "errors": str(r.errors), "grid": grid,
        "output_resolution": output_resolution,
        **{f"total_{k}": str(v) for k, v in r.totals.items()},
    }
    if not lost_reported:
        kv["lost"] = kv["total_lost"] = LOST_UNREPORTED
    return kv
