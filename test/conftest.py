"""Shared fixtures. Sets a per-run ROS_DOMAIN_ID and the shipped Fast DDS profile before any test
imports rclpy, so parallel runs on one machine never hear each other."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CAMVID = (ROOT / ".." / "shared" / "data" / "camvid").resolve()

os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ["ROS_LOCALHOST_ONLY"] = "1"  # Humble; Jazzy and later read the next line
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
_profile = str(ROOT / "config" / "fastdds_shm.xml")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from seg_perception.node.dds import profile_variable  # noqa: E402 - needs ROOT on sys.path

os.environ.setdefault(profile_variable(), _profile)  # only the name this ROS 2 reads

TINY_META = {
    "arch": "seglite",
    "arch_kwargs": {"widths": [8, 16, 24, 32], "depth16": 2},
    "mean": [110.0, 112.0, 115.0],
    "std": [70.0, 70.0, 72.0],
    "input_size": [96, 128],
}


def camvid_root() -> Path:
    return CAMVID


needs_camvid = pytest.mark.skipif(
    not (CAMVID / "val").is_dir(), reason=f"CamVid not present at {CAMVID}")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised checkpoint (seeded): real weights, real graph, fast."""
    import torch

    from seg_perception.core.classes import CAMVID as CAMVID_CLASSES
    from seg_perception.model.checkpoint import save_checkpoint
    from seg_perception.model.network import model_from_meta

    torch.manual_seed(0)
    meta = {**TINY_META, "classes": CAMVID_CLASSES.to_dict()}
    model = model_from_meta(meta)
    # Randomise BN statistics so outputs are not dominated by one class.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path) -> Path:
    from seg_perception.optimize.export import export_onnx

    return export_onnx(tiny_checkpoint, tiny_checkpoint.with_suffix(".onnx"))


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


_OPEN_LOGS: list = []


def logs() -> tuple[list[str], dict]:
    """This thread's package log lines from here to the end of the test (warnings: WARN)."""
    from seg_perception.core.logs import collected

    ctx = collected(this_thread=True)
    out = ctx.__enter__()
    _OPEN_LOGS.append(ctx)
    return out, {}


@pytest.fixture(autouse=True)
def _close_logs():  # noqa: ANN202 - a pytest generator fixture
    yield
    while _OPEN_LOGS:
        _OPEN_LOGS.pop().__exit__(None, None, None)
