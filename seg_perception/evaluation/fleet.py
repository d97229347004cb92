"""``seg-perception evaluate`` over a fleet of bags: whole bags in parallel on Dask workers
(dask.distributed), one pooled report.

A recording campaign is many bags; evaluating them one ``evaluate`` at a time leaves cores (or
cluster nodes) idle and gives no figure for the whole fleet. Here each worker opens its backend
once and evaluates whole bags with the single-bag code (``evaluate.evaluate``), so every bag gets
exactly the metrics.json/report.md it would get alone, in ``OUT/bags/NAME/``. The driver sums
the bags' confusion matrices (mIoU is recomputed from the sum, never averaged) and pools their
latencies into ``OUT/metrics.json`` and ``OUT/report.md``.

A bag that fails is a row with its error; it never costs the other bags their results. Live
mode gives each worker its own ROS_DOMAIN_ID (base + worker index), so the workers' nodes never
hear each other. Dask is imported inside functions only: the node and the single-bag path never
load it.

Why Dask and not Ray: the job is a few coarse, independent tasks with small results, which both
run in the same time; measured here on the same fleet job (README, "Scaling out";
bench/bench_fleet.py), Dask brings 37 MB to the environment against Ray's 250 MB, has two worker
processes ready in about a third of Ray's start-up time (1.5 against 4.5-5 s) and the whole run
holds about half of Ray's resident memory.

How the fleet maps onto Dask:

- Workers: an embedded ``LocalCluster`` (``--workers N`` processes with one task thread each,
  on 127.0.0.1, no dashboard) or the workers of ``--scheduler-address``. Each fleet worker
  ("slot", index 0..N-1) is one Dask worker process; the index gives its ROS_DOMAIN_ID and its
  share of the GPUs.
- One backend per worker: a slot's ``BagWorker`` (classes and, offline, the open backend) is
  kept on its Dask worker object (``distributed.get_worker()``), keyed by run and slot, and every
  bag task of that slot finds it there. Plain tasks pinned to the slot's worker rather than a
  Dask Actor: actor methods run on a thread of their own, an actor dies with its worker and is
  not replaced, and actor futures cannot be waited on together; with tasks, a worker that its
  nanny restarted after a crash simply opens its backend again for its next bag.
- Dispatch: the driver keeps one bag in flight per slot and gives the next one (largest first)
  to whichever slot finishes, so no bag queues behind another on a busy worker while one idles.
  A bag whose worker died is a failed row (the local cluster does not rerun it); the slot takes
  the next bag on the restarted worker, and after two deaths in a row it gets no more bags.
- Stopping: Dask cannot interrupt a running task, and runs it on a worker thread that no signal
  reaches. On Ctrl-C the driver asks each busy worker (``Client.run``, on the worker's event
  loop, on any host) to raise KeyboardInterrupt in the thread running the bag: what Ctrl-C does
  to a single run, so the bag writes what it measured and a live node is shut down. Workers of
  the embedded cluster ignore the terminal's SIGINT, which would close them mid-bag.
- GPUs (``--gpus-per-worker``): on the embedded cluster, the visible GPUs are shared out through
  each worker's CUDA_VISIBLE_DEVICES, set before its backend opens (whole GPUs side by side, or
  several workers per GPU). On a cluster they are the Dask worker resource ``GPU`` (``dask
  worker --resources GPU=1``, devices chosen by each worker's own environment): only workers
  with that much take part, and each bag task requests it.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.evaluation.config import EvalConfig, config_from_args
from seg_perception.evaluation.inputs import open_bag, resolve_topics
from seg_perception.evaluation.report import write_failed_report, write_fleet_report
from seg_perception.evaluation.single import evaluate
from seg_perception.evaluation.tally import Tally, build_metrics, percentile_summary, summary_line
from seg_perception.inference.factory import create_backend
from seg_perception.inference.modelinfo import read_model_info

if TYPE_CHECKING:
    from seg_perception.core.classes import ClassSet
    from seg_perception.inference.backend import Backend

METADATA = "metadata.yaml"
MAX_DOMAIN_ID = 232
"""The largest ROS_DOMAIN_ID Fast DDS maps to ports (ROS 2's documented upper bound)."""
DEATHS_BEFORE_RETIRING = 2
"""A slot whose worker died this many times in a row gets no more bags (a backend that crashes
its process on every bag would otherwise be restarted for each one)."""
CANCEL_WAIT_S = 15.0
"""How long a stopped fleet waits for its bags to write what they measured."""
POLL_S = 1.0
"""How often the driver looks at the bags in flight (frames so far, workers still there)."""
RESTART_WAIT_S = 60.0
"""How long a slot whose worker died waits for the worker's nanny to start it again."""
WORKER_WAIT_S = 60.0
"""How long to wait for a scheduler's workers to register (--workers of them, or one)."""
STATE_ATTR = "seg_perception_fleet"
"""The Dask worker attribute that holds its slots' BagWorkers, by (run, slot index)."""


# ---------------------------------------------------------------------------------------------
# Finding bags


def is_bag_dir(p: Path) -> bool:
    """A rosbag2 folder: one with a metadata.yaml."""
    return p.is_dir() and (p / METADATA).is_file()


def find_bags(root: Path) -> list[Path]:
    """Every rosbag2 folder under ``root`` (``root`` itself if it is one), sorted, without
    descending into a bag; symlinked folders are followed once."""
    root = Path(root)
    if is_bag_dir(root):
        return [root]
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            continue
        seen.add(real)
        dirnames.sort()
        if METADATA in filenames and Path(dirpath) != root:
            found.append(Path(dirpath))
            dirnames.clear()
    return sorted(found)


def discover_bags(bags: Iterable[Path], pattern: str | None) -> list[Path]:
    """The fleet: the ``--bag`` paths as given (a broken one is reported, not skipped), then
    ``--bags``: a folder (every bag under it) or a glob (matched bag folders, .mcap files, and
    the bags under matched folders). Duplicates are dropped; raises when nothing is found."""
    out: list[Path] = [Path(b) for b in bags]
    if pattern is not None:
        p = Path(pattern).expanduser()
        if p.is_dir():
            found = find_bags(p)
            if not found:
                raise ValueError(f"no rosbag2 bags (folders with {METADATA}) under {p}")
        elif glob.has_magic(pattern):
            found = []
            for m in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    found += find_bags(mp)
                elif mp.suffix == ".mcap":
                    found.append(mp)
            if not found:
                raise ValueError(f"--bags {pattern!r} matches no rosbag2 bag")
        else:
            raise ValueError(f"--bags {pattern!r} is neither a folder nor a glob that matches "
                             "anything")
        out += found
    unique: list[Path] = []
    keys: set[str] = set()
    for b in out:
        key = os.path.realpath(b)
        if key not in keys:
            keys.add(key)
            unique.append(b)
    if not unique:
        raise ValueError("no bags given: --bag PATH (repeatable) or --bags DIR_OR_GLOB")
    return unique


def bag_names(paths: Sequence[Path]) -> list[str]:
    """A folder name per bag for ``OUT/bags/``: the bag's own name, made unique with -2, -3."""
    names: list[str] = []
    used: set[str] = set()
    for p in paths:
        base = (p.stem if p.suffix == ".mcap" else p.name) or "bag"
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def _bag_bytes(p: Path) -> int:
    try:
        return sum(f.stat().st_size for f in p.iterdir() if f.is_file()) if p.is_dir() \
            else p.stat().st_size
    except OSError:
        return 0


def _count_images(cfg: EvalConfig) -> int:
    """Images the bag will contribute (for the frames bar); 0 when it cannot be read here."""
    try:
        reader = open_bag(cfg.bag)
    except Exception:  # noqa: BLE001 - the worker reports why; this is only a progress total
        return 0
    try:
        n = resolve_topics(reader, Path(cfg.bag), cfg.image_topic, cfg.label_topic).image_count
    except Exception:  # noqa: BLE001 - as above
        return 0
    finally:
        reader.close()
    return min(n, cfg.max_frames) if cfg.max_frames else n


# ---------------------------------------------------------------------------------------------
# One bag, in a worker


@dataclass
class BagJob:
    name: str
    path: Path
    out: Path
    images: int = 0


@dataclass
class BagResult:
    """What a worker sends back for one bag: small (no frames), enough to pool exactly."""

    name: str
    path: str
    out: str
    status: str  # ok | partial (stopped part-way, what it measured is kept) | failed
    error: str | None
    metrics: dict | None
    cm: ConfusionMatrix | None = None
    latencies_ms: list[float] = field(default_factory=list)
    fps_frames: int = 0  # what the bag's fps counts: masks taken (live) or inferences (offline)
    worker: int | None = None
    domain_id: int | None = None
    host: str = ""
    wall_s: float = 0.0


def evaluate_bag(cfg: EvalConfig, name: str, classes: ClassSet,
                 backend: Backend | None = None, worker: int | None = None,
                 watch: Callable[[Tally], None] | None = None) -> BagResult:
    """``evaluate`` for one bag of a fleet; an error becomes the result's status instead of
    propagating, so the worker goes on with its next bag. ``watch``: given the bag's Tally as
    soon as it exists (progress)."""
    tallies: list[Tally] = []
    t0 = time.perf_counter()
    metrics: dict | None = None
    error: str | None = None

    def on_tally(t: Tally) -> None:
        tallies.append(t)
        if watch is not None:
            watch(t)

    try:
        metrics = evaluate(cfg, backend=backend, on_tally=on_tally)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one bag's failure is its
        # row in the table; an interrupted bag (the fleet stopping) returns what it measured
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        written = cfg.out / "metrics.json"
        if tallies and written.is_file():  # evaluate wrote what it had measured
            metrics = json.loads(written.read_text())
            error = metrics.get("error") or error
        else:
            _write_failed(cfg, classes, error)
    tally = tallies[0] if tallies else None
    if metrics is not None and metrics.get("complete"):
        status = "ok"
    elif metrics is not None and metrics.get("frames"):
        status = "partial"
    else:
        status = "failed"
    return BagResult(
        name=name, path=str(cfg.bag), out=str(cfg.out), status=status, error=error,
        metrics=metrics, cm=tally.cm if tally is not None and metrics is not None else None,
        latencies_ms=list(tally.latencies_ms) if tally is not None else [], worker=worker,
        fps_frames=(tally.masks_received if cfg.live else len(tally.latencies_ms))
        if tally is not None else 0,
        domain_id=cfg.domain_id if cfg.live else None, host=socket.gethostname(),
        wall_s=round(time.perf_counter() - t0, 3))


def _write_failed(cfg: EvalConfig, classes: ClassSet, error: str) -> None:
    """metrics.json (the usual keys, nothing measured) and report.md for a bag that failed
    before evaluate could write them: every bag folder reads the same way."""
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
        m = build_metrics(Tally(classes), mode="live" if cfg.live else "offline", bag=None,
                          bag_path=Path(cfg.bag), backend=cfg.backend, precision=cfg.precision,
                          model=Path(cfg.model).resolve(), fps=None, complete=False, error=error)
        (cfg.out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        write_failed_report(cfg.out, str(cfg.bag), error)
    except OSError as exc:
        print(f"warning: {cfg.out}: {exc}", file=sys.stderr)


class BagWorker:
    """One slot in its Dask worker process: the model's classes and (offline) the backend,
    opened once (live mode starts the node per bag); evaluates whole bags, one at a time.

    ``stop`` (from another thread: the worker's event loop) interrupts the running bag the way
    Ctrl-C interrupts a single run."""

    def __init__(self, index: int, cfg: EvalConfig) -> None:
        self.index = index
        self.cfg = cfg
        self.classes = read_model_info(Path(cfg.model)).classes
        self.tally: Tally | None = None  # the running bag's, for the driver's frames bar
        self._lock = threading.Lock()
        self._thread: int | None = None  # the thread running a bag, until it is stopped
        self.backend: Backend | None = None
        if not cfg.live:
            self.backend = create_backend(cfg.model, cfg.backend, cfg.precision, cfg.threads)

    def ready(self) -> dict:
        b = self.backend
        return {"index": self.index, "pid": os.getpid(), "host": socket.gethostname(),
                "backend": b.name if b is not None else self.cfg.backend,
                "domain_id": self.cfg.domain_id if self.cfg.live else None}

    def frames(self) -> int:
        t = self.tally
        return int(t.frames) if t is not None else 0

    def _watch(self, tally: Tally) -> None:
        self.tally = tally

    def evaluate(self, job: BagJob) -> BagResult:
        cfg = replace(self.cfg, bag=job.path, out=job.out)
        result: BagResult | None = None
        try:
            with self._lock:
                self._thread = threading.get_ident()
            result = evaluate_bag(cfg, job.name, self.classes, self.backend, self.index,
                                  watch=self._watch)
        except KeyboardInterrupt:  # a stop that landed just outside evaluate_bag
            pass
        finally:
            self._leave()
        if result is None:
            result = BagResult(job.name, str(job.path), str(job.out), "failed",
                               "KeyboardInterrupt", None, worker=self.index)
        return result

    def stop(self) -> bool:
        """KeyboardInterrupt in the thread running a bag (once per bag); False when idle."""
        with self._lock:
            ident, self._thread = self._thread, None
            if ident is None:
                return False
            _raise_in_thread(ident, KeyboardInterrupt)
            return True

    def _leave(self) -> None:
        """The bag is over: no stop may land after this, in Dask's own code (a KeyboardInterrupt
        escaping a task shuts its worker down)."""
        me = threading.get_ident()
        while True:
            try:
                with self._lock:
                    self._thread = None
                    _raise_in_thread(me, None)  # drops a stop sent but not raised yet
                self.tally = None
                return
            except KeyboardInterrupt:  # the stop landed here: it is spent, finish leaving
                continue

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def _raise_in_thread(ident: int, exc: type[BaseException] | None) -> None:
    """Raises ``exc`` in thread ``ident`` at its next Python instruction (None: cancels one
    not raised yet). The one way into a task thread: signals reach only the main thread."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None)


# In the worker process: tasks (on its task thread) and Client.run functions (on its event loop,
# the process's main thread). Module-level, so Dask sends them by name.


def _slots_here(dask_worker: Any = None) -> dict[tuple[str, int], BagWorker]:  # noqa: ANN401
    if dask_worker is None:
        from distributed import get_worker

        dask_worker = get_worker()
    slots = getattr(dask_worker, STATE_ATTR, None)
    if slots is None:
        slots = {}
        setattr(dask_worker, STATE_ATTR, slots)
    return slots


def _slot(run: str, index: int, cfg: EvalConfig, cuda: str | None) -> BagWorker:
    """This worker's BagWorker for the slot, opened on first use (and again in a worker process
    that replaced one that died)."""
    slots = _slots_here()
    w = slots.get((run, index))
    if w is None:
        if cuda is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda  # before anything here opens CUDA
        w = slots[(run, index)] = BagWorker(index, cfg)
    return w


def _slot_start(run: str, index: int, cfg: EvalConfig, cuda: str | None) -> dict:
    """Task: opens the slot's backend and says where it runs."""
    return _slot(run, index, cfg, cuda).ready()


def _slot_bag(run: str, index: int, cfg: EvalConfig, cuda: str | None, job: BagJob) -> BagResult:
    """Task: one whole bag on the slot's backend."""
    return _slot(run, index, cfg, cuda).evaluate(job)


def _slot_frames(run: str, dask_worker: Any) -> int:  # noqa: ANN401 - a distributed.Worker
    """Client.run: frames the run's bags in progress here have read so far."""
    return sum(w.frames() for (r, _), w in list(_slots_here(dask_worker).items()) if r == run)


def _slot_stop(run: str, dask_worker: Any) -> int:  # noqa: ANN401
    """Client.run: interrupts the run's bags in progress here; how many there were."""
    return sum(w.stop() for (r, _), w in list(_slots_here(dask_worker).items()) if r == run)


def _slot_close(run: str, dask_worker: Any) -> None:  # noqa: ANN401
    """Client.run: closes and forgets the run's backends here."""
    slots = _slots_here(dask_worker)
    for key in [k for k in slots if k[0] == run]:
        slots.pop(key).close()


def _quiet_sigint() -> None:
    """Client.run on the embedded cluster's workers: the terminal's Ctrl-C reaches every process
    of its group, and a worker's own handler would close it mid-bag; the driver stops the bags
    instead. A Python handler, not SIG_IGN, so a live node started by the worker has the default
    one again."""
    signal.signal(signal.SIGINT, _ignore_signal)


def _ignore_signal(signum: int, frame: object) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# Pooling


def pool(results: Sequence[BagResult], classes: ClassSet, cfg: EvalConfig) -> tuple[
        dict, ConfusionMatrix, list[float]]:
    """The fleet's metrics.json: the bags' confusion matrices summed (mIoU, IoU and pixel
    accuracy from the sum), counts summed, latency percentiles over every frame, plus a row per
    bag. Bags that stopped part-way contribute what they measured."""
    cm = ConfusionMatrix(classes.num_classes)
    lat: list[float] = []
    totals = dict.fromkeys(("frames", "frames_scored", "dropped", "labels_without_image",
                            "images_without_label", "bad_frames", "bad_labels",
                            "size_mismatch", "duplicate_image_stamps", "duplicate_label_stamps",
                            "unscored_repeated_stamps", "unscored_evicted",
                            "label_pixels_out_of_range"), 0)
    backends: list[str] = []
    precisions: list[str] = []
    topics: dict[str, list[str]] = {"image_topic": [], "label_topic": []}
    live_fps: list[tuple[float, int]] = []
    rows = []
    for r in results:
        m = r.metrics
        if m is not None:
            if r.cm is not None:
                cm.merge(r.cm)
            lat += r.latencies_ms
            for k in totals:
                totals[k] += int(m.get(k) or 0)
            backends.append(str(m.get("backend")))
            precisions.append(str(m.get("precision")))
            for k, v in topics.items():
                if m.get(k):
                    v.append(str(m[k]))
            if m.get("fps") is not None:
                live_fps.append((float(m["fps"]), r.fps_frames))
        ml = (m or {}).get("latency_ms") or {}
        report = Path(r.out) / "report.md"
        rows.append({
            "name": r.name, "path": r.path, "status": r.status, "error": r.error,
            "frames": int((m or {}).get("frames") or 0),
            "frames_scored": int((m or {}).get("frames_scored") or 0),
            "dropped": int((m or {}).get("dropped") or 0),
            "miou": (m or {}).get("miou"),
            "latency_p50_ms": ml.get("p50"), "latency_p95_ms": ml.get("p95"),
            "fps": (m or {}).get("fps"),
            "backend": (m or {}).get("backend"),
            "out": r.out,
            "report": f"bags/{r.name}/report.md" if report.is_file() else None,
            "worker": r.worker, "domain_id": r.domain_id, "host": r.host, "wall_s": r.wall_s,
        })
    if cfg.live:  # output rate of each bag, weighted by the masks it received
        n = sum(w for _, w in live_fps)
        fps = sum(f * w for f, w in live_fps) / n if n else None
    else:  # the per-worker inference rate, as a single bag reports it: frames / busy time
        fps = len(lat) / (sum(lat) / 1000.0) if lat and sum(lat) > 0 else None

    def num(v: float) -> float | None:
        return None if v is None or not np.isfinite(v) else round(float(v), 6)

    failed = [r for r in results if r.status != "ok"]
    m = {
        "miou": num(cm.miou()),
        "per_class_iou": {n: num(v) for n, v in zip(classes.names, cm.iou(), strict=True)},
        "pixel_accuracy": num(cm.pixel_accuracy()),
        **totals,
        "latency_ms": percentile_summary(lat),
        "fps": num(fps) if fps is not None else None,
        "backend": _one_or_mixed(backends, cfg.backend),
        "precision": _one_or_mixed(precisions, cfg.precision),
        "model": str(Path(cfg.model).resolve()),
        "mode": "live" if cfg.live else "offline",
        "complete": not failed,
        "error": (f"{len(failed)} of {len(results)} bags did not complete: "
                  + "; ".join(f"{r.name}: {r.error}" for r in failed)) if failed else None,
        "image_topic": _one_or_mixed(topics["image_topic"], cfg.image_topic),
        "label_topic": _one_or_mixed(topics["label_topic"], cfg.label_topic),
        "scored_pixels": cm.scored_pixels,
        "class_names": list(classes.names),
        "confusion_matrix": cm.mat.tolist(),
        "bags_total": len(results),
        "bags_ok": sum(r.status == "ok" for r in results),
        "bags_partial": sum(r.status == "partial" for r in results),
        "bags_failed": sum(r.status == "failed" for r in results),
        "bags": rows,
    }
    return m, cm, lat


def _one_or_mixed(values: Sequence[str], default: str) -> str:
    distinct = sorted(set(values))
    if not distinct:
        return default
    return distinct[0] if len(distinct) == 1 else "mixed: " + ", ".join(distinct)


# ---------------------------------------------------------------------------------------------
# The fleet on Dask


@dataclass
class FleetOptions:
    workers: int | None = None  # None: the CPU cores (local) or the scheduler's workers
    scheduler_address: str | None = None  # None: an embedded local cluster
    gpus_per_worker: float | None = None  # None: the GPUs shared out, at most 1 each
    threads: int | None = None  # None: the cores per worker (a cluster worker: its threads)
    progress: bool = True


@dataclass
class _Slot:
    """A fleet worker as the driver sees it."""

    index: int
    name: Any  # the Dask worker's name: its nanny restarts it under the same one
    address: str
    cfg: EvalConfig
    cuda: str | None = None  # CUDA_VISIBLE_DEVICES for it (embedded cluster), None: as it is
    deaths: int = 0


def _connect(opts: FleetOptions, workers: int) -> tuple[Any, Any, bool, str]:
    """(client, the cluster started here or None, whether to close the client, where). A Dask
    client that is already this process's default (a caller's) is used as it is; else the
    scheduler at ``opts.scheduler_address``; else a local cluster of ``workers`` processes."""
    import dask
    from distributed import Client, LocalCluster

    try:
        client = Client.current()
    except ValueError:  # none
        client = None
    if client is not None:
        return client, None, False, f"existing Dask client, scheduler {client.scheduler.address}"
    if opts.scheduler_address:
        client = Client(opts.scheduler_address)
        return client, None, True, f"scheduler {opts.scheduler_address}"
    # A bag whose worker died is reported, not run again on another one (as a crash in a single
    # run is). No dashboard, so no statistical profiler sampling the bag's thread every 10 ms;
    # the scheduler's small HTTP server takes a free port, not 8787.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.WARNING)
    try:
        client = Client(cluster)  # the default while it runs (distributed.wait uses it)
    except BaseException:
        cluster.close()
        raise
    return client, cluster, True, f"local, {workers} processes"


def _worker_order(item: tuple[str, dict]) -> tuple:
    name = item[1].get("name")
    return (0, name, item[0]) if isinstance(name, int) else (1, str(name), item[0])


def _local_gpus() -> list[str]:
    """The GPUs this host's processes may use: CUDA_VISIBLE_DEVICES when it is set, else those
    ``nvidia-smi -L`` lists (none without a driver)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i in range(sum(ln.startswith("GPU ") for ln in listed.splitlines()))]


def share_gpus(gpus: Sequence[str], workers: int, per_worker: float | None) -> list[str | None]:
    """Each local worker's CUDA_VISIBLE_DEVICES for ``per_worker`` GPUs each (None: the GPUs
    shared out, at most 1 each): whole GPUs side by side, or several workers on one GPU. ""
    hides the GPUs (0 asked for); None leaves the variable alone (no GPU here, none asked)."""
    gpw = per_worker if per_worker is not None else (
        min(1.0, len(gpus) / workers) if gpus else 0.0)
    if gpw < 0:
        raise ValueError(f"--gpus-per-worker must be >= 0, got {gpw:g}")
    if not gpus:
        if gpw > 0:
            raise ValueError(f"--gpus-per-worker {gpw:g}: no GPU visible here")
        return [None] * workers
    if gpw == 0:
        return [""] * workers
    if gpw > 1 and gpw != int(gpw):
        raise ValueError(f"--gpus-per-worker {gpw:g}: above 1 it must be a whole number")
    if gpw * workers > len(gpus) + 1e-9:
        raise ValueError(f"--gpus-per-worker {gpw:g} for {workers} workers is more than the "
                         f"{len(gpus)} GPU(s) here")
    if gpw >= 1:
        k = int(gpw)
        return [",".join(gpus[i * k:(i + 1) * k]) for i in range(workers)]
    return [gpus[int(i * gpw + 1e-9)] for i in range(workers)]


def _make_slots(client: Any, cfg: EvalConfig, opts: FleetOptions, want: int | None,  # noqa: ANN401
                n_jobs: int, embedded: bool) -> tuple[dict[int, _Slot], dict | None]:
    """The fleet's workers (at most one per bag) and the resources each bag task asks for."""
    try:
        client.wait_for_workers(max(1, min(want or 1, n_jobs)), timeout=WORKER_WAIT_S)
    except Exception:  # noqa: BLE001 - fewer came: use those there are
        pass
    infos = sorted(client.scheduler_info(n_workers=-1)["workers"].items(), key=_worker_order)
    if not infos:
        raise RuntimeError(f"no Dask worker registered with the scheduler within "
                           f"{WORKER_WAIT_S:g} s")
    n = max(1, min(want or len(infos), len(infos), n_jobs))
    resources = None
    if embedded:
        cuda = share_gpus(_local_gpus(), n, opts.gpus_per_worker)
    else:  # the cluster's GPUs: the workers' resource "GPU"
        total = sum(float((w.get("resources") or {}).get("GPU", 0)) for _, w in infos)
        gpw = opts.gpus_per_worker if opts.gpus_per_worker is not None else (
            min(1.0, total / n) if total else 0.0)
        if gpw < 0:
            raise ValueError(f"--gpus-per-worker must be >= 0, got {gpw:g}")
        if gpw > 0:
            infos = [(a, w) for a, w in infos
                     if float((w.get("resources") or {}).get("GPU", 0)) >= gpw]
            if not infos:
                raise RuntimeError(f"--gpus-per-worker {gpw:g}: no worker has that much of the "
                                   "resource GPU (start them with --resources GPU=1)")
            n = min(n, len(infos))
            resources = {"GPU": gpw}
        cuda = [None] * n
    base = _domain_base(cfg, n) if cfg.live else 0
    slots: dict[int, _Slot] = {}
    for i, (addr, w) in enumerate(infos[:n]):
        threads = opts.threads if opts.threads is not None else max(1, (
            (os.cpu_count() or 1) // n if embedded else int(w.get("nthreads") or 1)))
        c = replace(cfg, threads=threads, progress=False)
        if cfg.live:
            c = replace(c, domain_id=base + i)
        slots[i] = _Slot(i, w.get("name"), addr, c, cuda[i])
    return slots, resources


def _domain_base(cfg: EvalConfig, workers: int) -> int:
    base = cfg.domain_id if cfg.domain_id is not None else int(
        os.environ.get("ROS_DOMAIN_ID") or 0)
    if base < 0 or base + workers - 1 > MAX_DOMAIN_ID:
        raise ValueError(f"live fleet: ROS_DOMAIN_ID {base} + {workers} workers goes past "
                         f"{MAX_DOMAIN_ID}; choose a lower --domain-id")
    return base


def _rejoin(client: Any, slot: _Slot, quiet: bool) -> bool:  # noqa: ANN401
    """Waits for the nanny to start the slot's worker again (same name, new address); False
    when it does not come back (no nanny, or an unnamed worker: nothing to know it by)."""
    if slot.name is None or slot.name == slot.address:
        return False
    end = time.monotonic() + RESTART_WAIT_S
    while time.monotonic() < end:
        for addr, w in client.scheduler_info(n_workers=-1)["workers"].items():
            if w.get("name") == slot.name and addr != slot.address:
                slot.address = addr
                if quiet:
                    client.run(_quiet_sigint, workers=[addr])
                return True
        time.sleep(0.5)
    return False


def evaluate_fleet(cfg: EvalConfig, bags: Sequence[Path], opts: FleetOptions) -> dict:
    """Evaluates ``bags`` on Dask workers and writes the pooled metrics.json and report.md into
    ``cfg.out`` (each bag's own into ``cfg.out/bags/NAME``), also when interrupted or when bags
    fail; returns the pooled metrics."""
    from distributed import CancelledError, wait
    from distributed import TimeoutError as DaskTimeoutError

    t_start = time.perf_counter()
    classes = read_model_info(Path(cfg.model)).classes  # a bad model fails here, before Dask
    names = bag_names(bags)
    out = Path(cfg.out)
    jobs = [BagJob(n, Path(b), out / "bags" / n) for n, b in zip(names, bags, strict=True)]
    for j in jobs:
        j.images = _count_images(replace(cfg, bag=j.path))
    order = {j.name: i for i, j in enumerate(jobs)}
    local_cpus = os.cpu_count() or 1
    if opts.workers is not None and opts.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {opts.workers}")
    n_local = min(opts.workers or local_cpus, len(jobs))
    t_connect = time.perf_counter()
    try:
        client, cluster, owned, where = _connect(opts, n_local)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ...
        raise RuntimeError(f"cannot start Dask ({opts.scheduler_address or 'local cluster'}): "
                           f"{type(exc).__name__}: {exc}") from exc
    t_cluster = time.perf_counter()
    # None: every worker of the scheduler (or of the caller's client)
    want = opts.workers if opts.workers is not None else (
        n_local if cluster is not None else None)
    run = uuid.uuid4().hex[:12]
    results: dict[str, BagResult] = {}
    timing: dict[str, float | None] = {"cluster_start_s": round(t_cluster - t_connect, 3),
                                       "workers_start_s": None, "bags_s": None}
    slots: dict[int, _Slot] = {}
    used: list[str] = []  # every worker address a slot had, for closing their backends
    workers = 0
    try:
        slots, resources = _make_slots(client, cfg, opts, want, len(jobs), cluster is not None)
        workers = len(slots)
        used += [s.address for s in slots.values()]
        if cluster is not None:
            client.run(_quiet_sigint, workers=used)

        def pinned(s: _Slot, fn: Callable, *args: Any, key: str) -> Any:  # noqa: ANN401
            return client.submit(fn, run, s.index, s.cfg, s.cuda, *args, key=f"{key}-{run}",
                                 workers=[s.address], allow_other_workers=False, pure=False,
                                 resources=resources)

        starting = {i: pinned(s, _slot_start, key=f"fleet-start-{i}") for i, s in slots.items()}
        startup_errors: dict[int, str] = {}
        for i, fut in starting.items():
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - that worker cannot open the backend
                startup_errors[i] = f"worker {i}: {_error_text(exc)}"
                del slots[i]
        starting.clear()  # released: nothing to recompute when a worker dies later
        timing["workers_start_s"] = round(time.perf_counter() - t_cluster, 3)
        t_bags = time.perf_counter()
        # Largest bags first: the last bag to start is a small one, so workers finish together.
        pending = deque(sorted(jobs, key=lambda j: -_bag_bytes(j.path)))
        inflight: dict[Any, tuple[_Slot, BagJob]] = {}
        last_death = next(iter(startup_errors.values()), "no worker could start")
        frames_done = 0

        def submit(s: _Slot) -> None:
            if pending and s.index in slots:
                job = pending.popleft()
                inflight[pinned(s, _slot_bag, job, key=f"fleet-bag-{order[job.name]}")] = (s, job)

        bar_opts = {"disable": not opts.progress, "dynamic_ncols": True}
        with tqdm(total=len(jobs), desc="bags", unit="bag", position=0, **bar_opts) as bag_bar, \
                tqdm(total=sum(j.images for j in jobs) or None, desc="frames", unit="frame",
                     position=1, **bar_opts) as frame_bar:
            for s in list(slots.values()):
                submit(s)
            try:
                while inflight:
                    try:
                        done = set(wait(list(inflight), timeout=POLL_S,
                                        return_when="FIRST_COMPLETED").done)
                    except (DaskTimeoutError, CancelledError):  # none yet, or one cancelled
                        done = {f for f in inflight if f.done()}
                    if not done:  # a bag whose worker is gone is over; else frames so far
                        alive = set(client.nthreads())
                        done = {f for f, (s, _) in inflight.items() if s.address not in alive}
                        if not done:
                            so_far = _frames_in_flight(
                                client, run, sorted({s.address for s, _ in inflight.values()}))
                            frame_bar.update(max(0, frames_done + so_far - frame_bar.n))
                    for fut in done:
                        s, job = inflight.pop(fut)
                        res, died = _outcome(fut, s, job)
                        if died:
                            last_death = res.error or "a worker died"
                            s.deaths += 1
                            if s.deaths >= DEATHS_BEFORE_RETIRING or not _rejoin(
                                    client, s, quiet=cluster is not None):
                                del slots[s.index]
                            else:
                                used.append(s.address)
                        else:
                            s.deaths = 0
                        results[job.name] = res
                        frames_done += int((res.metrics or {}).get("frames") or 0)
                        bag_bar.update(1)
                        frame_bar.update(max(0, frames_done - frame_bar.n))
                        bad = sum(r.status != "ok" for r in results.values())
                        if bad:
                            bag_bar.set_postfix(failed=bad, refresh=False)
                        submit(s)
                for job in pending:  # no worker left to take them
                    results[job.name] = BagResult(job.name, str(job.path), str(job.out),
                                                  "failed", f"not run: {last_death}", None)
                    bag_bar.update(1)
                pending.clear()
            except BaseException:
                _interrupt(client, run, inflight)
                for fut, (s, job) in inflight.items():  # keep what they measured
                    res = None
                    if fut.status == "finished":
                        try:
                            res = fut.result(timeout=10)
                        except Exception:  # noqa: BLE001 - gone with its worker
                            res = None
                    if res is None:
                        fut.cancel()
                        res = BagResult(job.name, str(job.path), str(job.out), "failed",
                                        "interrupted while running", None, worker=s.index)
                    results[job.name] = res
                raise
        timing["bags_s"] = round(time.perf_counter() - t_bags, 3)
    finally:
        done_rows = sorted(results.values(), key=lambda r: order[r.name])
        for j in jobs:
            if j.name not in results:
                done_rows.append(BagResult(j.name, str(j.path), str(j.out), "failed",
                                           "not run (the fleet run was stopped)", None))
        for r in done_rows:  # died with its worker or never ran: its folder still says why
            if r.metrics is None and not (Path(r.out) / "metrics.json").is_file():
                _write_failed(replace(cfg, bag=Path(r.path), out=Path(r.out)), classes,
                              r.error or "not run")
        metrics, cm, lat = pool(done_rows, classes, cfg)
        bags_s = timing["bags_s"] or (time.perf_counter() - t_cluster)
        metrics.update({
            "workers": workers, "cluster": where,
            "throughput_fps": round(len(lat) / bags_s, 3) if bags_s > 0 and lat else None,
            "timing": {**timing, "total_s": round(time.perf_counter() - t_start, 3)},
        })
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        try:
            write_fleet_report(out, metrics, cm.mat, lat, classes)
        except Exception as exc:  # noqa: BLE001 - metrics.json is written; say what failed
            print(f"warning: report.md not written: {exc}", file=sys.stderr)
        _shut_down(client, cluster, owned, run, used)
    return metrics


def _outcome(fut: Any, s: _Slot, job: BagJob) -> tuple[BagResult, bool]:  # noqa: ANN401
    """A finished bag task's result, and whether its worker died under it."""
    from distributed import KilledWorker

    def failed(error: str) -> BagResult:
        return BagResult(job.name, str(job.path), str(job.out), "failed", error, None,
                         worker=s.index)

    death = f"worker {s.index} died while evaluating it (its process ended)"
    if fut.status in ("pending", "lost"):  # its worker left before the result could be fetched
        fut.cancel()
        return failed(death), True
    if fut.status == "cancelled":
        return failed("cancelled"), False
    try:
        return fut.result(), False
    except KilledWorker:
        return failed(death), True
    except Exception as exc:  # noqa: BLE001 - e.g. the backend would not open on a new worker
        return failed(_error_text(exc)), False


def _frames_in_flight(client: Any, run: str, addresses: list[str]) -> int:  # noqa: ANN401
    try:
        got = client.run(_slot_frames, run, workers=addresses, on_error="return")
    except Exception:  # noqa: BLE001 - only the progress bar waits on this
        return 0
    return sum(v for v in got.values() if isinstance(v, int))


def _interrupt(client: Any, run: str, inflight: dict[Any, tuple[_Slot, BagJob]]) -> None:  # noqa: ANN401
    """Stops the bags in flight the way Ctrl-C stops a single run, and waits a little for them,
    so each writes what it measured and a live node is shut down, not orphaned."""
    from distributed import wait

    if not inflight:
        return
    try:
        busy = {s.address for s, _ in inflight.values()} & set(client.nthreads())
        if busy:  # (Client.run would keep trying to reach a worker that is gone)
            client.run(_slot_stop, run, workers=sorted(busy), on_error="ignore")
        wait(list(inflight), timeout=CANCEL_WAIT_S)
    except Exception:  # noqa: BLE001 - best effort while stopping (a timeout, a lost worker)
        pass


def _shut_down(client: Any, cluster: Any, owned: bool, run: str, used: list[str]) -> None:  # noqa: ANN401
    """Closes the run's backends on the workers, then the client and the cluster started here
    (a caller's client is left running)."""
    try:
        there = set(used) & set(client.nthreads()) if used and cluster is None else set()
        if there:  # (an embedded cluster's workers end with it)
            client.run(_slot_close, run, workers=sorted(there), on_error="ignore")
    except Exception:  # noqa: BLE001 - workers that are gone have nothing to close
        pass
    if owned:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def _error_text(exc: BaseException, limit: int = 300) -> str:
    """What went wrong in a line: the (remote) exception's type and first line, without Dask's
    advice."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    text = text.split(" Inspecting worker logs")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Command line (evaluate.run dispatches here)


def run_fleet(args: argparse.Namespace) -> int:
    """``evaluate --bag A --bag B ...`` / ``--bags DIR_OR_GLOB``: 0 when every bag completed,
    1 otherwise (the pooled metrics and every bag's are written either way)."""
    bags = discover_bags(args.bag or [], args.bags)
    one = argparse.Namespace(**{**vars(args), "bag": [bags[0]]})
    cfg = config_from_args(one)  # the single-bag checks, once for all
    opts = FleetOptions(workers=args.workers, scheduler_address=args.scheduler_address,
                        gpus_per_worker=args.gpus_per_worker, threads=args.threads)
    m = evaluate_fleet(cfg, bags, opts)
    print(f"{len(bags)} bags on {m['workers']} workers ({m['cluster']}): " + summary_line(m))
    for b in m["bags"]:
        if b["status"] != "ok":
            print(f"  {b['name']}: {b['status']}: {b['error']}", file=sys.stderr)
    t = m["timing"]
    print(f"bags took {t['bags_s'] or 0:.1f} s (Dask start {t['cluster_start_s']:.1f} s, "
          f"workers {t['workers_start_s'] or 0:.1f} s); wrote {cfg.out / 'metrics.json'}, "
          f"{cfg.out / 'report.md'} and {cfg.out / 'bags'}/")
    return 0 if m["complete"] else 1
