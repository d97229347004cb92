"""`colcon build` of the package (colcon-core, colcon-ros from PyPI) installs what ROS users
expect, and the installed node starts from the install space alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rostools import ROOT, default_sigint

COLCON = Path(sys.executable).parent / "colcon"


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    if not COLCON.exists():
        pytest.skip(f"colcon not found next to {sys.executable}")
    ws = tmp_path_factory.mktemp("ws")
    for f in tracked():
        (ws / "src" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, ws / "src" / f)
    r = subprocess.run([str(COLCON), "build", "--base-paths", "src"], cwd=ws,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return ws / "install" / "seg_perception"


def test_install_layout(install):
    share = install / "share" / "seg_perception"
    assert (install / "share" / "ament_index" / "resource_index" / "packages"
            / "seg_perception").is_file()
    for rel in ("package.xml", "launch/camera.launch.py", "config/segmentation.yaml",
                "config/fastdds_shm.xml"):
        assert (share / rel).is_file(), rel
    for f in tracked():
        if f.startswith(("engines/", "data/")) and not f.endswith(".md"):
            assert (share / f).is_file(), f
    node = install / "lib" / "seg_perception" / "segmentation_node"
    assert node.is_file() and os.access(node, os.X_OK)


@pytest.mark.ros
def test_installed_node_starts_from_install_space(install, tmp_path):
    if "engines/seglite_camvid.onnx" not in tracked():
        pytest.skip("no bundled model committed in engines/")
    site = next((install / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(install),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(install / "lib" / "seg_perception" / "segmentation_node")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    try:
        line = ""
        for line in proc.stdout:  # type: ignore[union-attr]
            if "segmentation node ready" in line or "error" in line.lower():
                break
        assert "segmentation node ready" in line, line
        assert str(install / "share" / "seg_perception" / "engines") in line
    finally:
        proc.send_signal(2)
        rest = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, rest
