"""The fleet's engine on one job, Dask (what ``seg-perception evaluate --bags`` runs) beside Ray
(the same ``BagWorker`` in Ray actors, as the fleet ran before; only where Ray is installed).

For each engine it prints:

- install size: the engine's distributions plus the dependencies only it brings to this
  environment (the files their RECORDs list; what ``du -sh`` of those folders gives);
- time to a 2-worker local cluster ready: a fresh process imports the engine, starts the
  cluster and waits for two workers (Dask: ``LocalCluster`` + ``Client``; Ray: ``ray.init`` and
  two actors that answer);
- for 1 and 2 workers on ``--copies`` copies of data/camvid_sample (offline, ONNX Runtime fp32,
  ``--threads 1``, ``--overlays 0``): engine start, bags (after it is up), the whole command
  (a fresh process, reports included), inference p50, pooled mIoU, and the peak resident memory
  of the command and every process it started (summed RSS, and PSS, which counts shared pages
  once).

Each figure is one fresh process per round; rounds are interleaved (engine, workers) so a
machine that drifts affects every column alike. Prints the CPU, its AVX-512 flags and the load
average: a busy machine (another job on the cores) shows there. No pass/fail.

  python bench/bench_fleet.py [--rounds 2] [--copies 4] [--engines dask ray] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "data" / "camvid_sample"
ENGINES = {"dask": ["dask[distributed]"], "ray": ["ray"]}
"""The distributions (with extras) each engine is installed as."""
PROJECT_REQUIREMENTS = ("requirements-common.txt", "requirements.txt")


# ---------------------------------------------------------------------------------------------
# Install size


def _requirement(text: str) -> tuple[str, set[str]] | None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        r = Requirement(text)
    except InvalidRequirement:
        return None
    return r.name, set(r.extras)


def _closure(roots: list[tuple[str, set[str]]]) -> set[str]:
    """The installed distributions ``roots`` pull in (themselves included), canonical names."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = deque(roots)
    while todo:
        name, extras = todo.popleft()
        key = canonicalize_name(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key in seen and not extras:
            continue
        seen.add(key)
        for text in dist.requires or []:
            r = Requirement(text)
            env_extras = extras or {""}
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in env_extras):
                todo.append((r.name, set(r.extras)))
    return seen


def _dist_bytes(name: str) -> int:
    from importlib import metadata

    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        try:
            total += Path(str(dist.locate_file(f))).stat().st_size
        except OSError:
            pass
    return total


def install_sizes(engines: list[str]) -> dict[str, dict]:
    """Per engine: the distributions only it needs here and their size on disk."""
    others: list[tuple[str, set[str]]] = []
    engine_names = {r[0] for specs in ENGINES.values() for s in specs
                    if (r := _requirement(s)) is not None}
    for req in PROJECT_REQUIREMENTS:
        for line in (ROOT / req).read_text().splitlines():
            line = line.split("#")[0].strip()
            r = _requirement(line) if line and not line.startswith("-") else None
            if r is not None and r[0] not in engine_names:
                others.append(r)
    shared = _closure(others)
    out = {}
    for engine in engines:
        roots = [r for s in ENGINES[engine] if (r := _requirement(s))]
        own = _closure(roots) - shared
        if not own:
            continue
        sizes = {n: _dist_bytes(n) for n in sorted(own)}
        out[engine] = {"bytes": sum(sizes.values()), "distributions": sizes}
    return out


# ---------------------------------------------------------------------------------------------
# In a fresh process (--child): time to a ready cluster; the Ray fleet


def child_ready(engine: str, t_process: float) -> dict:
    """Imports the engine, starts a 2-worker local cluster and waits until both answer."""
    t0 = time.perf_counter()
    if engine == "dask":
        import logging

        from distributed import Client, LocalCluster

        t1 = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.WARNING)
        client = Client(cluster)
        client.wait_for_workers(2)
        pids = client.run(os.getpid)
        t2 = time.perf_counter()
        client.close()
        cluster.close()
    else:
        import logging

        import ray

        t1 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 object_store_memory=128 * 2**20)

        @ray.remote(num_cpus=1)
        class Ping:
            def pid(self) -> int:
                return os.getpid()

        pids = ray.get([Ping.remote().pid.remote()  # type: ignore[attr-defined]
                        for _ in range(2)])
        t2 = time.perf_counter()
        ray.shutdown()
    assert len(set(pids.values() if isinstance(pids, dict) else pids)) == 2
    return {"import_s": t1 - t0, "start_s": t2 - t1, "ready_s": t2 - t0,
            "since_process_start_s": t2 - t_process}


def child_ray_fleet(bags: Path, out: Path, workers: int) -> dict:
    """The fleet as it ran on Ray: an actor per worker opening the backend once, bags largest
    first, one in flight per actor, the same pooling and reports."""
    import logging

    from seg_perception.evaluation.config import EvalConfig
    from seg_perception.evaluation.fleet import (
        BagJob,
        BagWorker,
        _bag_bytes,
        _count_images,
        bag_names,
        find_bags,
        pool,
    )
    from seg_perception.evaluation.report import write_fleet_report
    from seg_perception.inference.modelinfo import default_model_path, read_model_info

    t_start = time.perf_counter()
    paths = find_bags(bags)
    cfg = EvalConfig(bag=paths[0], out=out, model=default_model_path(), backend="onnxruntime",
                     threads=1, overlays=0, progress=False)
    classes = read_model_info(Path(cfg.model)).classes
    jobs = [BagJob(n, p, out / "bags" / n) for n, p in zip(bag_names(paths), paths, strict=True)]
    for j in jobs:
        j.images = _count_images(replace(cfg, bag=j.path))
    t0 = time.perf_counter()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=128 * 2**20)
    t_ray = time.perf_counter()
    actor_cls = ray.remote(BagWorker)
    actors = [actor_cls.options(num_cpus=1).remote(i, cfg) for i in range(workers)]
    ray.get([a.ready.remote() for a in actors])
    t_workers = time.perf_counter()
    pending = deque(sorted(jobs, key=lambda j: -_bag_bytes(j.path)))
    inflight = {}
    results = {}
    for i, a in enumerate(actors):
        if pending:
            inflight[a.evaluate.remote(pending.popleft())] = i
    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1)
        i = inflight.pop(ready[0])
        r = ray.get(ready[0])
        results[r.name] = r
        if pending:
            inflight[actors[i].evaluate.remote(pending.popleft())] = i
    t_bags = time.perf_counter()
    ray.get([a.close.remote() for a in actors])
    done = [results[j.name] for j in jobs]
    metrics, cm, lat = pool(done, classes, cfg)
    metrics["timing"] = {"cluster_start_s": t_ray - t0, "workers_start_s": t_workers - t_ray,
                         "bags_s": t_bags - t_workers}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_fleet_report(out, metrics, cm.mat, lat, classes)
    ray.shutdown()
    metrics["timing"]["total_s"] = time.perf_counter() - t_start
    return {"timing": metrics["timing"]}


# ---------------------------------------------------------------------------------------------
# The parent: fresh processes, their memory, the table


class TreeMemory:
    """Peak of the summed RSS and PSS of a process and all its descendants, sampled."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            rss = pss = n = 0
            for p in procs:
                try:
                    m = p.memory_full_info()
                except psutil.Error:
                    continue
                rss += m.rss
                pss += getattr(m, "pss", m.rss)
                n += 1
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, n)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, TreeMemory, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    mem = TreeMemory(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    mem.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    return wall, mem, output


def fleet_round(engine: str, workers: int, bags: Path, out: Path, env: dict[str, str]) -> dict:
    if engine == "dask":
        cmd = [sys.executable, "-m", "seg_perception", "evaluate", "--bags", str(bags), "--out",
               str(out), "--workers", str(workers), "--threads", "1", "--overlays", "0",
               "--backend", "onnxruntime"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "ray-fleet",
               "--child-bags", str(bags), "--child-out", str(out), "--child-workers",
               str(workers)]
    wall, mem, _ = run_measured(cmd, env)
    m = json.loads((out / "metrics.json").read_text())
    t = m["timing"]
    return {"start_s": t["cluster_start_s"] + (t["workers_start_s"] or 0),
            "bags_s": t["bags_s"], "whole_s": wall, "p50_ms": m["latency_ms"]["p50"],
            "miou": m["miou"], "frames": m["frames_scored"], "rss_mb": mem.peak_rss / 2**20,
            "pss_mb": mem.peak_pss / 2**20, "procs": mem.peak_procs}


def ready_round(engine: str, env: dict[str, str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", f"ready-{engine}"]
    _, mem, output = run_measured(cmd, env)
    line = [ln for ln in output.splitlines() if ln.startswith("{")][-1]
    return {**json.loads(line), "rss_mb": mem.peak_rss / 2**20, "pss_mb": mem.peak_pss / 2**20}


def machine() -> str:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, AVX-512: "
            f"{' '.join(avx512) if avx512 else 'no'}; load average {load}")


def installed(engine: str) -> str | None:
    from importlib import metadata

    name = "dask" if engine == "dask" else "ray"
    try:
        v = metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
    if engine == "dask":
        try:
            return f"dask {v}, distributed {metadata.version('distributed')}"
        except metadata.PackageNotFoundError:
            return None
    return f"ray {v}"


def fmt(values: list[float], spec: str) -> str:
    return " / ".join(format(v, spec) for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--engines", nargs="*", default=["dask", "ray"], choices=sorted(ENGINES))
    ap.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--no-fleet", action="store_true", help="sizes and start-up only")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-bags", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-workers", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        t_process = time.perf_counter()
        if args.child.startswith("ready-"):
            print(json.dumps(child_ready(args.child.removeprefix("ready-"), t_process)))
        else:
            print(json.dumps(child_ray_fleet(args.child_bags, args.child_out,
                                             args.child_workers)))
        return 0

    engines = [e for e in args.engines if installed(e)]
    for e in sorted(set(args.engines) - set(engines)):
        print(f"{e}: not installed here, skipped")
    print(machine())
    print("; ".join(installed(e) or e for e in engines))
    print("\ninstall size (the engine and the dependencies only it brings here):")
    for e, s in install_sizes(engines).items():
        print(f"  {e}: {s['bytes'] / 2**20:.0f} MB: " + ", ".join(
            f"{n} {b / 2**20:.1f}" for n, b in sorted(s["distributions"].items(),
                                                         key=lambda kv: -kv[1])))
    # The engine's workers import the project from here, not from another checkout.
    env = dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"]
                                                    if os.environ.get("PYTHONPATH") else ""),
               RAY_USAGE_STATS_ENABLED="0")
    ready: dict[str, list[dict]] = {e: [] for e in engines}
    fleet: dict[tuple[str, int], list[dict]] = {(e, w): [] for e in engines for w in args.workers}
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmp:
        bags = Path(tmp) / "bags"
        for i in range(args.copies):
            shutil.copytree(SAMPLE, bags / f"camvid_{i + 1}")
        for r in range(args.rounds):
            for e in engines:
                ready[e].append(ready_round(e, env))
            if args.no_fleet:
                continue
            for e in engines:
                for w in args.workers:
                    out = Path(tmp) / f"out_{e}_{w}_{r}"
                    fleet[(e, w)].append(fleet_round(e, w, bags, out, env))
                    print(f"  round {r + 1}: {e}, {w} worker(s): bags "
                          f"{fleet[(e, w)][-1]['bags_s']:.1f} s", flush=True)
    print(f"\ntime to a 2-worker local cluster ready (fresh process; {args.rounds} rounds):")
    print("| engine | import | start to 2 workers ready | both | peak RSS / PSS (MB) |")
    print("| --- | --- | --- | --- | --- |")
    for e, rs in ready.items():
        print(f"| {e} | {fmt([x['import_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['start_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['ready_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['rss_mb'] for x in rs], '.0f')} / "
              f"{fmt([x['pss_mb'] for x in rs], '.0f')} |")
    if args.no_fleet:
        return 0
    n_frames = 34 * args.copies
    print(f"\nfleet: {args.copies} copies of data/camvid_sample ({n_frames} frames), offline, "
          f"ONNX Runtime fp32, --threads 1, --overlays 0; per round:")
    print("| engine | workers | engine start | bags (after it is up) | whole command | "
          "inference p50 | peak RSS (MB) | peak PSS (MB) | mIoU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (e, w), rs in fleet.items():
        print(f"| {e} | {w} | {fmt([x['start_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['bags_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['whole_s'] for x in rs], '.1f')} s | "
              f"{fmt([x['p50_ms'] for x in rs], '.1f')} ms | "
              f"{fmt([x['rss_mb'] for x in rs], '.0f')} | "
              f"{fmt([x['pss_mb'] for x in rs], '.0f')} | "
              f"{rs[0]['miou']:.3f} |")
    for e in engines:
        if all((e, w) in fleet for w in (1, 2)):
            one = statistics.median(x["bags_s"] for x in fleet[(e, 1)])
            two = statistics.median(x["bags_s"] for x in fleet[(e, 2)])
            print(f"{e}: 2 workers evaluate the bags {one / two:.2f}x as fast as 1 (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
