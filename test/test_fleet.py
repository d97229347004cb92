"""evaluate over a fleet of bags on Dask: the pooled figures are the single-bag runs combined
(confusion matrices summed, mIoU from the sum), a broken bag is a row with its error and costs
the others nothing, --bags DIR / GLOB finds the bags, and Ctrl-C stops the bag in progress and
keeps what it measured. The clusters stay small: 2 worker processes of one thread, shut down
after."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evaltools import START_NS, make_dataset
from rostools import default_sigint
from seg_perception.cli import main as cli
from seg_perception.core.classes import CAMVID
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.datasets.bag import pair_folders, write_bag
from seg_perception.evaluation.evaluate import EvalConfig, evaluate
from seg_perception.evaluation.fleet import bag_names, discover_bags, find_bags, share_gpus

ROOT = Path(__file__).resolve().parent.parent


def bag(tmp: Path, name: str, n: int, seed: int, **kw: object) -> Path:
    """A small bag of its own content (each seed draws other layouts)."""
    ds = make_dataset(tmp / f"{name}_data", n=n, seed=seed, **kw)  # type: ignore[arg-type]
    out = tmp / name
    write_bag(pair_folders(ds / "val", ds / "valannot"), out, classes=CAMVID, start_ns=START_NS,
              progress=False)
    return out


def load(p: Path) -> dict:
    return json.loads((p / "metrics.json").read_text())


def from_matrix(mat: list) -> ConfusionMatrix:
    cm = ConfusionMatrix(CAMVID.num_classes)
    cm.mat[...] = np.asarray(mat, np.int64)  # in-range predictions: the full matrix here
    return cm


@pytest.fixture(scope="module")
def dask_client():
    """One small local cluster for the tests that share it (the fleet uses the default client
    it finds)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        yield client


@pytest.mark.slow
def test_pooled_metrics_are_the_single_bag_runs_combined(tmp_path, tiny_onnx, capsys):
    """Through the CLI, with the embedded cluster it starts and shuts down itself."""
    bags = [bag(tmp_path, "a", 3, 1), bag(tmp_path, "b", 4, 2), bag(tmp_path, "c", 2, 3)]
    singles = [evaluate(EvalConfig(bag=b, out=tmp_path / f"single_{b.name}", model=tiny_onnx,
                                   backend="onnxruntime", threads=1, overlays=0,
                                   progress=False)) for b in bags]
    out = tmp_path / "fleet"
    args = ["evaluate", "--out", str(out), "--model", str(tiny_onnx), "--backend",
            "onnxruntime", "--workers", "2", "--threads", "1", "--overlays", "0"]
    for b in bags:
        args += ["--bag", str(b)]
    assert cli(args) == 0
    from distributed import Client

    with pytest.raises(ValueError, match="No clients found"):
        Client.current()  # the client it started is closed, with its cluster
    printed = capsys.readouterr().out
    assert "3 bags on 2 workers" in printed and "9/9 frames scored" in printed

    m = load(out)
    total = ConfusionMatrix(CAMVID.num_classes)
    for s in singles:
        total.merge(from_matrix(s["confusion_matrix"]))
    assert m["confusion_matrix"] == total.mat.tolist()
    assert m["miou"] == pytest.approx(total.miou(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(total.pixel_accuracy(), abs=1e-6)
    for name, v in zip(CAMVID.names, total.iou(), strict=True):
        got = m["per_class_iou"][name]
        assert got is None if np.isnan(v) else got == pytest.approx(v, abs=1e-6)
    assert m["scored_pixels"] == total.scored_pixels
    # Not the mean of the per-bag mIoUs (the bags differ, so the two differ).
    assert m["miou"] != pytest.approx(np.mean([s["miou"] for s in singles]), abs=1e-6)
    assert m["frames"] == m["frames_scored"] == 9 and m["dropped"] == 0
    assert m["complete"] is True and m["error"] is None
    assert m["bags_ok"] == 3 and m["workers"] == 2 and m["mode"] == "offline"
    assert m["latency_ms"]["p50"] > 0 and m["throughput_fps"] > 0

    # Each bag's own folder: the very figures a single run gives.
    for b, s in zip(bags, singles, strict=True):
        own = load(out / "bags" / b.name)
        assert own["confusion_matrix"] == s["confusion_matrix"]
        assert own["frames_scored"] == s["frames_scored"] and own["complete"] is True
        assert (out / "bags" / b.name / "report.md").is_file()
    rows = {r["name"]: r for r in m["bags"]}
    assert list(rows) == ["a", "b", "c"]  # the order given, whatever order they ran in
    assert rows["b"]["frames"] == 4 and rows["b"]["status"] == "ok"
    assert rows["b"]["miou"] == pytest.approx(singles[1]["miou"], abs=1e-6)
    assert {r["worker"] for r in m["bags"]} <= {0, 1}
    text = (out / "report.md").read_text()
    assert "## Per bag" in text and "[b](bags/b/report.md) | 4 | 4 |" in text
    assert f"| mIoU (pooled) | {m['miou']:.3f} |" in text
    for png in ("iou.png", "confusion.png", "latency.png"):
        assert (out / png).stat().st_size > 5000


def corrupt_midway(tmp: Path) -> Path:
    """12 frames whose third zstd chunk is broken (as in test_evaluate)."""
    b = bag(tmp, "corrupt", 12, 4, size=(240, 320))
    f = b / "corrupt.mcap"
    data = bytearray(f.read_bytes())
    magic = b"\x28\xb5\x2f\xfd"
    starts = [i for i in range(len(data) - 3) if data[i:i + 4] == magic]
    assert len(starts) >= 3
    data[starts[2]:starts[2] + 4] = b"\0\0\0\0"
    f.write_bytes(bytes(data))
    return b


@pytest.mark.slow
def test_broken_bags_are_reported_and_cost_the_others_nothing(tmp_path, tiny_onnx, capsys,
                                                              dask_client):
    good = [bag(tmp_path, "good1", 3, 5), bag(tmp_path, "good2", 2, 6)]
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metadata.yaml").write_text("just a string\n")
    corrupt = corrupt_midway(tmp_path)
    missing = tmp_path / "missing"
    out = tmp_path / "fleet"
    args = ["evaluate", "--out", str(out), "--model", str(tiny_onnx), "--backend",
            "onnxruntime", "--overlays", "0"]
    for b in (good[0], garbage, corrupt, missing, good[1]):
        args += ["--bag", str(b)]
    assert cli(args) == 1
    err = capsys.readouterr().err
    assert "garbage: failed: ValueError: cannot read bag" in err and "Traceback" not in err

    m = load(out)
    assert m["complete"] is False and "3 of 5 bags did not complete" in m["error"]
    assert (m["bags_ok"], m["bags_partial"], m["bags_failed"]) == (2, 1, 2)
    rows = {r["name"]: r for r in m["bags"]}
    assert rows["garbage"]["status"] == "failed"
    assert "cannot read bag" in rows["garbage"]["error"]
    assert rows["missing"]["status"] == "failed" and "bag not found" in rows["missing"]["error"]
    assert rows["corrupt"]["status"] == "partial"
    assert "became unreadable after" in rows["corrupt"]["error"]
    assert 0 < rows["corrupt"]["frames"] < 12
    for name, n in (("good1", 3), ("good2", 2)):
        own = load(out / "bags" / name)
        assert own["complete"] is True and own["frames_scored"] == n
        assert rows[name]["status"] == "ok"
    # Every bag has its folder; the failed ones say why.
    for name in ("garbage", "missing"):
        own = load(out / "bags" / name)
        assert own["complete"] is False and own["frames"] == 0 and own["error"]
        assert "Failed before any frame" in (out / "bags" / name / "report.md").read_text()
    # Pooled: the good bags plus what the corrupt one measured before it stopped.
    total = ConfusionMatrix(CAMVID.num_classes)
    for name in ("good1", "good2", "corrupt"):
        total.merge(from_matrix(load(out / "bags" / name)["confusion_matrix"]))
    assert m["confusion_matrix"] == total.mat.tolist()
    assert m["miou"] == pytest.approx(total.miou(), abs=1e-6)
    assert m["frames_scored"] == 5 + rows["corrupt"]["frames_scored"]
    text = (out / "report.md").read_text()
    assert "3 of 5 bags did not complete" in text
    assert "| failed: ValueError: cannot read bag" in text
    assert dask_client.status == "running"  # a client the caller started is left running
    assert m["cluster"].startswith("existing Dask client")


@pytest.mark.slow
def test_bags_dir_and_glob_discovery(tmp_path, tiny_onnx, capsys, dask_client):
    root = tmp_path / "fleet_in"
    a = bag(root, "a", 2, 7)
    b = bag(root / "day2", "b", 3, 8)
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a bag")
    (root / "readme.txt").write_text("not a bag")
    for d in root.glob("*_data"):  # the PNG folders the bags were made from: not bags either
        assert not (d / "metadata.yaml").exists()
    assert find_bags(root) == [a, b]
    assert discover_bags([], str(root)) == [a, b]
    assert discover_bags([], str(root / "*")) == [a, b]  # a glob: bags and bags under folders
    assert discover_bags([a], str(root)) == [a, b]  # the same bag twice is evaluated once
    assert find_bags(a) == [a]  # a bag folder is itself the fleet
    assert discover_bags([], str(root / "day2" / "b" / "*.mcap")) == [b / "b.mcap"]
    assert bag_names([Path("x/bag"), Path("y/bag"), Path("z/bag.mcap")]) == \
        ["bag", "bag-2", "bag-3"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no rosbag2 bags"):
        discover_bags([], str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="matches no rosbag2 bag"):
        discover_bags([], str(tmp_path / "nothing*"))

    out = tmp_path / "fleet"
    assert cli(["evaluate", "--bags", str(root), "--out", str(out), "--model", str(tiny_onnx),
                "--backend", "onnxruntime", "--overlays", "1"]) == 0
    assert "2 bags on 2 workers" in capsys.readouterr().out
    m = load(out)
    assert [r["name"] for r in m["bags"]] == ["a", "b"]
    assert m["frames_scored"] == 5 and m["complete"] is True
    assert len(list((out / "bags" / "b" / "overlays").glob("frame_*.png"))) == 1


@pytest.mark.slow
def test_ctrl_c_stops_the_bag_in_progress_and_keeps_what_it_measured(tmp_path):
    """Ctrl-C at a terminal: SIGINT to the whole process group, the embedded cluster's workers
    included. The bag in progress stops as a single run stops (its own partial report), the bag
    not started yet is a row that says so, and no worker process outlives the command."""
    import psutil

    long = bag(tmp_path, "long", 120, 9)  # the bundled model: seconds of work
    short = bag(tmp_path, "short", 4, 10)
    out = tmp_path / "fleet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seg_perception", "evaluate", "--bag", str(short), "--bag",
         str(long), "--out", str(out), "--backend", "onnxruntime", "--workers", "1",
         "--threads", "1", "--overlays", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint, start_new_session=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")),
                              daemon=True)
    reader.start()
    frames_bar = re.compile(r"frames:\s*\d+%\|[^|]*\|\s*(\d+)/")
    end = time.monotonic() + 180
    try:
        while time.monotonic() < end and proc.poll() is None:
            shown = frames_bar.findall("".join(seen))
            if shown and int(shown[-1]) > 0:  # the large bag (first) is under way
                break
            time.sleep(0.1)
        assert proc.poll() is None, "".join(seen)[-3000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the cluster's worker processes
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(5)
    assert proc.returncode == 130, "".join(seen)[-3000:]

    m = load(out)
    rows = {r["name"]: r for r in m["bags"]}
    assert m["complete"] is False and m["bags_total"] == 2
    assert rows["long"]["status"] == "partial" and rows["long"]["error"] == "KeyboardInterrupt"
    assert 0 < rows["long"]["frames"] < 120
    own = load(out / "bags" / "long")
    assert own["complete"] is False and own["error"] == "KeyboardInterrupt"
    assert "Incomplete run" in (out / "bags" / "long" / "report.md").read_text()
    assert rows["short"]["status"] == "failed"
    assert rows["short"]["error"] == "not run (the fleet run was stopped)"
    assert load(out / "bags" / "short")["frames"] == 0
    # Pooled: what the stopped bag measured.
    assert m["confusion_matrix"] == own["confusion_matrix"]
    assert m["frames_scored"] == own["frames_scored"]
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive  # no worker outlived the command


def test_gpus_are_shared_out_per_worker():
    """--gpus-per-worker on the embedded cluster: each worker's CUDA_VISIBLE_DEVICES."""
    assert share_gpus(["0", "1"], 2, None) == ["0", "1"]
    assert share_gpus(["0", "1"], 4, None) == ["0", "0", "1", "1"]  # half a GPU each
    assert share_gpus(["0", "1", "2", "3"], 2, 2) == ["0,1", "2,3"]
    assert share_gpus(["3", "5"], 3, 0.5) == ["3", "3", "5"]  # ids as CUDA_VISIBLE_DEVICES had
    assert share_gpus(["0"], 2, 0) == ["", ""]  # none asked for: hidden
    assert share_gpus([], 2, None) == [None, None]  # none here: the environment as it is
    for gpus, n, per in (([], 1, 1), (["0"], 2, 1), (["0", "1"], 1, 1.5), (["0"], 1, -1)):
        with pytest.raises(ValueError, match="gpus-per-worker"):
            share_gpus(gpus, n, per)


def test_dask_is_not_imported_by_the_node_or_a_single_bag_run():
    code = ("import sys, seg_perception.evaluation.evaluate, seg_perception.evaluation.fleet, "
            "seg_perception.node.config, seg_perception.cli; "
            "loaded = {'dask', 'distributed'} & set(sys.modules); "
            "assert not loaded, f'{loaded} imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
