"""``seg-perception evaluate`` over a fleet of bags: whole bags in parallel on Ray workers, one
pooled report.

A recording campaign is many bags; evaluating them one ``evaluate`` at a time leaves cores (or
cluster nodes) idle and gives no figure for the whole fleet. Here each Ray actor opens its
backend once and evaluates whole bags with the single-bag code (``evaluate.evaluate``), so every
bag gets exactly the metrics.json/report.md it would get alone, in ``OUT/bags/NAME/``. The
driver sums the bags' confusion matrices (mIoU is recomputed from the sum, never averaged) and
pools their latencies into ``OUT/metrics.json`` and ``OUT/report.md``.

A bag that fails is a row with its error; it never costs the other bags their results. Live
mode gives each worker its own ROS_DOMAIN_ID (base + worker index), so the workers' nodes never
hear each other. Ray is imported inside functions only: the node and the single-bag path never
load it.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
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
OBJECT_STORE_BYTES = 128 * 2**20
"""Results are a confusion matrix and a list of latencies per bag: Ray's default store (30% of
the RAM) would only reserve shared memory a training job may need."""
DEATHS_BEFORE_RETIRING = 2
"""A worker slot whose actor died this many times in a row gets no more bags (a backend that
crashes its process on every bag would otherwise be restarted for each one)."""
CANCEL_WAIT_S = 15.0
STOP_SIGNAL = signal.SIGUSR1


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
    worker: int | None = None
    domain_id: int | None = None
    host: str = ""
    wall_s: float = 0.0


def evaluate_bag(cfg: EvalConfig, name: str, classes: ClassSet,
                 backend: Backend | None = None, worker: int | None = None) -> BagResult:
    """``evaluate`` for one bag of a fleet; an error becomes the result's status instead of
    propagating, so the worker goes on with its next bag."""
    tallies: list[Tally] = []
    t0 = time.perf_counter()
    metrics: dict | None = None
    error: str | None = None
    try:
        metrics = evaluate(cfg, backend=backend, on_tally=tallies.append)
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
    """A Ray actor (wrapped with ``ray.remote`` by ``evaluate_fleet``): opens the backend once
    (offline; live mode starts the node per bag) and evaluates whole bags, one at a time.

    SIGUSR1 interrupts the running bag like Ctrl-C interrupts a single run (Ray keeps SIGINT
    from its workers and cannot interrupt a running actor method)."""

    def __init__(self, index: int, cfg: EvalConfig) -> None:
        self.index = index
        self.cfg = cfg
        self.busy = False
        if threading.current_thread() is threading.main_thread():  # where the bags run
            signal.signal(STOP_SIGNAL, self._on_stop)
        self.classes = read_model_info(Path(cfg.model)).classes
        self.backend: Backend | None = None
        if not cfg.live:
            self.backend = create_backend(cfg.model, cfg.backend, cfg.precision, cfg.threads)

    def ready(self) -> dict:
        b = self.backend
        return {"index": self.index, "pid": os.getpid(), "host": socket.gethostname(),
                "backend": b.name if b is not None else self.cfg.backend,
                "domain_id": self.cfg.domain_id if self.cfg.live else None}

    def _on_stop(self, signum: int, frame: object) -> None:
        if self.busy:  # between bags there is nothing to stop
            raise KeyboardInterrupt

    def evaluate(self, job: BagJob) -> BagResult:
        cfg = replace(self.cfg, bag=job.path, out=job.out)
        self.busy = True
        try:
            return evaluate_bag(cfg, job.name, self.classes, self.backend, self.index)
        finally:
            self.busy = False

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


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
                            "size_mismatch", "duplicate_image_stamps"), 0)
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
                live_fps.append((float(m["fps"]), len(r.latencies_ms)))
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
# The fleet on Ray


@dataclass
class FleetOptions:
    workers: int | None = None  # None: the CPU cores (local) or the cluster's CPUs
    ray_address: str | None = None  # None: an embedded local Ray
    gpus_per_worker: float | None = None  # None: the cluster's GPUs shared out, at most 1 each
    threads: int | None = None  # None: the cores per worker
    progress: bool = True


def _start_ray(opts: FleetOptions, workers: int) -> tuple[bool, str]:
    """Connects to ``opts.ray_address`` or starts a small local Ray; (started here, where).
    A Ray already initialised in this process (a caller's) is used as it is."""
    import ray

    if ray.is_initialized():
        return False, "existing Ray session"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # robots evaluate offline
    if opts.ray_address:
        ray.init(address=opts.ray_address, logging_level=logging.WARNING,
                 log_to_driver=True)
        return True, f"cluster {opts.ray_address}"
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=True, object_store_memory=OBJECT_STORE_BYTES)
    return True, f"local, {workers} CPUs"


def _domain_base(cfg: EvalConfig, workers: int) -> int:
    base = cfg.domain_id if cfg.domain_id is not None else int(
        os.environ.get("ROS_DOMAIN_ID") or 0)
    if base < 0 or base + workers - 1 > MAX_DOMAIN_ID:
        raise ValueError(f"live fleet: ROS_DOMAIN_ID {base} + {workers} workers goes past "
                         f"{MAX_DOMAIN_ID}; choose a lower --domain-id")
    return base


def evaluate_fleet(cfg: EvalConfig, bags: Sequence[Path], opts: FleetOptions) -> dict:
    """Evaluates ``bags`` on Ray workers and writes the pooled metrics.json and report.md into
    ``cfg.out`` (each bag's own into ``cfg.out/bags/NAME``), also when interrupted or when bags
    fail; returns the pooled metrics."""
    import ray
    from ray.exceptions import RayActorError, RayError

    t_start = time.perf_counter()
    classes = read_model_info(Path(cfg.model)).classes  # a bad model fails here, before Ray
    names = bag_names(bags)
    out = Path(cfg.out)
    jobs = [BagJob(n, Path(b), out / "bags" / n) for n, b in zip(names, bags, strict=True)]
    for j in jobs:
        j.images = _count_images(replace(cfg, bag=j.path))
    order = {j.name: i for i, j in enumerate(jobs)}
    local_cpus = os.cpu_count() or 1
    if opts.workers is not None and opts.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {opts.workers}")
    want = opts.workers if opts.workers is not None else (
        local_cpus if not opts.ray_address else None)
    try:
        started, where = _start_ray(opts, min(want or local_cpus, len(jobs)))
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, TimeoutError, ...
        raise RuntimeError(f"cannot start Ray ({opts.ray_address or 'local'}): "
                           f"{type(exc).__name__}: {exc}") from exc
    t_ray = time.perf_counter()
    results: dict[str, BagResult] = {}
    timing: dict[str, float | None] = {"ray_start_s": round(t_ray - t_start, 3),
                                       "workers_start_s": None, "bags_s": None}
    workers = 0
    try:
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", local_cpus))
        workers = max(1, min(want if want is not None else cpus, len(jobs)))
        gpus = float(resources.get("GPU", 0.0))
        gpw = opts.gpus_per_worker if opts.gpus_per_worker is not None else (
            min(1.0, gpus / workers) if gpus else 0.0)
        threads = opts.threads if opts.threads is not None else max(1, cpus // workers)
        base = _domain_base(cfg, workers) if cfg.live else 0
        wcfg = replace(cfg, threads=threads, progress=False)
        actor_cls = ray.remote(BagWorker)

        info: dict[int, Any] = {}  # worker index -> its ready() (pid, host), a Ray ref

        def spawn(i: int) -> Any:
            c = replace(wcfg, domain_id=base + i) if cfg.live else wcfg
            actor = actor_cls.options(num_cpus=1, num_gpus=gpw).remote(i, c)
            info[i] = actor.ready.remote()
            return actor

        actors: dict[int, Any] = {i: spawn(i) for i in range(workers)}
        startup_errors: dict[int, str] = {}
        for i in list(actors):
            try:
                ray.get(info[i])
            except RayError as exc:
                startup_errors[i] = _ray_error_text(exc)
                del actors[i]
        timing["workers_start_s"] = round(time.perf_counter() - t_ray, 3)
        t_bags = time.perf_counter()
        # Largest bags first: the last bag to start is a small one, so workers finish together.
        pending = deque(sorted(jobs, key=lambda j: -_bag_bytes(j.path)))
        inflight: dict[Any, tuple[int, BagJob]] = {}
        deaths = dict.fromkeys(actors, 0)
        last_death = next(iter(startup_errors.values()), "no worker could start")

        def submit(i: int) -> None:
            if pending and i in actors:
                job = pending.popleft()
                inflight[actors[i].evaluate.remote(job)] = (i, job)

        bar_opts = {"disable": not opts.progress, "dynamic_ncols": True}
        with tqdm(total=len(jobs), desc="bags", unit="bag", position=0, **bar_opts) as bag_bar, \
                tqdm(total=sum(j.images for j in jobs) or None, desc="frames", unit="frame",
                     position=1, **bar_opts) as frame_bar:
            for i in list(actors):
                submit(i)
            try:
                while inflight:
                    ready, _ = ray.wait(list(inflight), num_returns=1)
                    i, job = inflight.pop(ready[0])
                    try:
                        res = ray.get(ready[0])
                        deaths[i] = 0
                    except RayActorError as exc:  # the process died (crash, OOM): new one
                        last_death = f"worker {i} died: {_ray_error_text(exc)}"
                        res = BagResult(job.name, str(job.path), str(job.out), "failed",
                                        last_death, None, worker=i)
                        deaths[i] += 1
                        if deaths[i] >= DEATHS_BEFORE_RETIRING:
                            del actors[i]
                        else:
                            actors[i] = spawn(i)
                    except RayError as exc:
                        res = BagResult(job.name, str(job.path), str(job.out), "failed",
                                        _ray_error_text(exc), None, worker=i)
                    results[job.name] = res
                    bag_bar.update(1)
                    frame_bar.update(int((res.metrics or {}).get("frames") or 0))
                    bad = sum(r.status != "ok" for r in results.values())
                    if bad:
                        bag_bar.set_postfix(failed=bad, refresh=False)
                    submit(i)
                for job in pending:  # no worker left to take them
                    results[job.name] = BagResult(job.name, str(job.path), str(job.out),
                                                  "failed", f"not run: {last_death}", None)
                    bag_bar.update(1)
                pending.clear()
            except BaseException:
                _interrupt(ray, inflight, info)
                for ref, (i, job) in inflight.items():  # keep those that finished meanwhile
                    try:
                        results[job.name] = ray.get(ref, timeout=0)
                    except Exception:  # noqa: BLE001 - cancelled, or still running
                        results[job.name] = BagResult(job.name, str(job.path), str(job.out),
                                                      "failed", "interrupted while running",
                                                      None, worker=i)
                raise
        timing["bags_s"] = round(time.perf_counter() - t_bags, 3)
        for a in actors.values():
            try:
                ray.get(a.close.remote(), timeout=10)
            except RayError:
                pass
    finally:
        done = sorted(results.values(), key=lambda r: order[r.name])
        for j in jobs:
            if j.name not in results:
                done.append(BagResult(j.name, str(j.path), str(j.out), "failed",
                                      "not run (the fleet run was stopped)", None))
        for r in done:  # died with its worker or never ran: its folder still says why
            if r.metrics is None and not (Path(r.out) / "metrics.json").is_file():
                _write_failed(replace(cfg, bag=Path(r.path), out=Path(r.out)), classes,
                              r.error or "not run")
        metrics, cm, lat = pool(done, classes, cfg)
        bags_s = timing["bags_s"] or (time.perf_counter() - t_ray)
        metrics.update({
            "workers": workers, "ray": where,
            "throughput_fps": round(len(lat) / bags_s, 3) if bags_s > 0 and lat else None,
            "timing": {**timing, "total_s": round(time.perf_counter() - t_start, 3)},
        })
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        try:
            write_fleet_report(out, metrics, cm.mat, lat, classes)
        except Exception as exc:  # noqa: BLE001 - metrics.json is written; say what failed
            print(f"warning: report.md not written: {exc}", file=sys.stderr)
        if started:
            ray.shutdown()
    return metrics


def _interrupt(ray: Any, inflight: dict[Any, tuple[int, BagJob]], info: dict[int, Any]) -> None:
    """Stops the bags in flight the way Ctrl-C stops a single run, and waits a little for them,
    so each writes what it measured and a live node is shut down, not orphaned.

    Ray does not interrupt a running actor method (``ray.cancel`` only flags it) and its
    workers neither see the terminal's Ctrl-C nor react to SIGINT, so workers on this host get
    STOP_SIGNAL (KeyboardInterrupt in the running bag); on other hosts the bag is flagged and,
    when Ray shuts down, killed."""
    here = socket.gethostname()
    for ref, (i, _) in inflight.items():
        try:
            w = ray.get(info[i], timeout=1.0)
            if w["host"] == here:
                os.kill(int(w["pid"]), STOP_SIGNAL)
            else:
                ray.cancel(ref)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass
    if inflight:
        ray.wait(list(inflight), num_returns=len(inflight), timeout=CANCEL_WAIT_S)


def _ray_error_text(exc: BaseException, limit: int = 300) -> str:
    """What went wrong in a line, not Ray's whole remote traceback or its advice."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and str(cause):
        text = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}"
    else:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        text = f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    text = text.split(" Some common causes")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Command line (evaluate.run dispatches here)


def run_fleet(args: argparse.Namespace) -> int:
    """``evaluate --bag A --bag B ...`` / ``--bags DIR_OR_GLOB``: 0 when every bag completed,
    1 otherwise (the pooled metrics and every bag's are written either way)."""
    bags = discover_bags(args.bag or [], args.bags)
    one = argparse.Namespace(**{**vars(args), "bag": [bags[0]]})
    cfg = config_from_args(one)  # the single-bag checks, once for all
    opts = FleetOptions(workers=args.workers, ray_address=args.ray_address,
                        gpus_per_worker=args.gpus_per_worker, threads=args.threads)
    m = evaluate_fleet(cfg, bags, opts)
    print(f"{len(bags)} bags on {m['workers']} workers ({m['ray']}): " + summary_line(m))
    for b in m["bags"]:
        if b["status"] != "ok":
            print(f"  {b['name']}: {b['status']}: {b['error']}", file=sys.stderr)
    t = m["timing"]
    print(f"bags took {t['bags_s'] or 0:.1f} s (Ray start {t['ray_start_s']:.1f} s, workers "
          f"{t['workers_start_s'] or 0:.1f} s); wrote {cfg.out / 'metrics.json'}, "
          f"{cfg.out / 'report.md'} and {cfg.out / 'bags'}/")
    return 0 if m["complete"] else 1
