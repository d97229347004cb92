"""Thread-safe counters and a latency window for the node's diagnostics."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class WindowReport:
    period_s: float
    input_fps: float
    output_fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    backend_p50_ms: float  # the backend's own inference, without decode/resize/publish
    backend_p95_ms: float
    overhead_p50_ms: float  # per frame: receipt-to-publish minus the backend's own time
    dropped: int  # in this window
    bad: int
    errors: int
    lost: int
    never_seen: int = 0  # frames the camera sent that never arrived (header-stamp gaps)
    totals: dict[str, int] = field(default_factory=dict)
    stalled_windows: int = 0  # windows in a row, this one included, with input but no output
    unsubscribed: int = 0  # frames decoded but not inferred: no output had a reader


class NodeStats:
    COUNTERS = ("received", "published", "dropped", "bad", "errors", "lost", "never_seen",
                "worker_restarts", "bad_camera_info", "bad_headers", "unsubscribed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals = dict.fromkeys(self.COUNTERS, 0)
        self._window = dict.fromkeys(self.COUNTERS, 0)
        self._lat: list[float] = []
        self._inf: list[float] = []
        self._t0 = time.monotonic()
        self._stalled = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.totals[name] += n
            self._window[name] += n

    def published(self, latency_s: float, backend_s: float) -> None:
        with self._lock:
            self.totals["published"] += 1
            self._window["published"] += 1
            self._lat.append(latency_s)
            self._inf.append(backend_s)

    def roll(self) -> WindowReport:
        """Closes the current window and returns its figures (NaN latency when nothing ran)."""
        now = time.monotonic()
        with self._lock:
            w, lat, inf = self._window, self._lat, self._inf
            self._window = dict.fromkeys(self.COUNTERS, 0)
            self._lat, self._inf = [], []
            period, self._t0 = max(now - self._t0, 1e-6), now
            totals = dict(self.totals)
            stuck = w["received"] and not w["published"] and not w["unsubscribed"]
            self._stalled = self._stalled + 1 if stuck else 0
            stalled = self._stalled
        p50, p95 = (np.percentile(lat, [50, 95]) * 1e3) if lat else (float("nan"),) * 2
        return WindowReport(
            period_s=period, input_fps=w["received"] / period, output_fps=w["published"] / period,
            latency_p50_ms=float(p50), latency_p95_ms=float(p95),
            backend_p50_ms=float(np.percentile(inf, 50) * 1e3) if inf else float("nan"),
            backend_p95_ms=float(np.percentile(inf, 95) * 1e3) if inf else float("nan"),
            overhead_p50_ms=float(np.median(np.subtract(lat, inf)) * 1e3) if lat else float("nan"),
            dropped=w["dropped"], bad=w["bad"], errors=w["errors"], lost=w["lost"],
            never_seen=w["never_seen"], totals=totals, stalled_windows=stalled,
            unsubscribed=w["unsubscribed"])


class StampGaps:
    """Frames the camera sent that never reached the node, from gaps in header stamps.

    rclpy gives no publication sequence numbers to a subscription callback on Humble..Kilted, and
    a keep-last-1 reader overwrites frames without telling (its ``message_lost`` event counts
    only what DDS itself noticed). A camera stamps at a steady period, so a gap of k periods
    means k - 1 frames never seen. The period is the median of recent gaps, so losses do not
    shift it. A long gap is only counted once a gap of about one period follows and confirms
    the period, over the whole stretch, so a late frame followed by an early one (publisher
    jitter) adds up to no loss; ``rate_change`` long gaps in a row are a camera that slowed down
    (or lost every other frame for good, which stamps cannot tell apart): the period is
    re-learnt and nothing is counted. Gaps over ``pause_s`` are a stopped camera, not a loss;
    stamps that go backwards (a bag replayed in a loop) restart the count. A median gap under
    ``min_period_s`` is no camera's period (stamps 1 ns apart would make a 0.9 s gap 9e8 lost
    frames): nothing is counted from it.
    """

    def __init__(self, window: int = 64, pause_s: float = 1.0, min_deltas: int = 8,
                 rate_change: int = 4, min_period_s: float = 1e-3) -> None:
        self._deltas: deque[int] = deque(maxlen=window)
        self._last: int | None = None
        self._pause_ns = int(pause_s * 1e9)
        self._min = min_deltas
        self._rate_change = rate_change
        self._min_period_ns = min_period_s * 1e9
        self._pending: list[int] = []  # long gaps waiting for a one-period gap to confirm them

    def _period(self) -> float | None:
        if len(self._deltas) < self._min:
            return None
        period = statistics.median(self._deltas)
        return period if period >= self._min_period_ns else None

    def _settle(self, period: float, closing: int) -> int:
        """Frames missing over the pending long gaps and the gap that closes them."""
        gaps = [*self._pending, closing]
        self._pending = []
        self._deltas.extend(gaps)
        return max(int(round(sum(gaps) / period)) - len(gaps), 0)

    def add(self, stamp_ns: int) -> int:
        """Frames found missing with this stamp (for the stretch its gap confirms)."""
        last, self._last = self._last, stamp_ns
        if last is None or stamp_ns <= last:
            self._pending = []
            return 0
        d = stamp_ns - last
        period = self._period()
        if period is None:
            self._deltas.append(d)
            return 0
        if d > self._pause_ns:  # the camera stopped: nothing confirms what was pending
            self._pending = []
            return 0
        if d >= 1.5 * period:
            self._pending.append(d)
            if len(self._pending) >= self._rate_change:  # a new period, not a loss
                self._deltas.clear()
                self._deltas.extend(self._pending)
                self._pending = []
            return 0
        if self._pending:
            return self._settle(period, d)
        self._deltas.append(d)
        return 0
