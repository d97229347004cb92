"""``seg-perception doctor`` where TensorRT is absent: every check reported, no traceback.

The same command with TensorRT present runs through the strict stand-in in
test_tensorrt_standin.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from seg_perception.inference.factory import tensorrt_available


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT is usable here")
def test_doctor_says_what_is_missing_and_fails(tmp_path):
    p = subprocess.run([sys.executable, "-m", "seg_perception", "doctor",
                        "--engine-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1
    out = p.stdout
    assert "Traceback" not in out + p.stderr
    assert "FAIL  tensorrt" in out and "python3-libnvinfer" in out
    assert "FAIL  pycuda" in out and "pip install pycuda" in out
    assert "PASS  engine directory" in out and "PASS  model" in out
    assert "check(s) failed" in out.splitlines()[-1]


def test_doctor_reports_an_unwritable_engine_dir_and_a_bad_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = subprocess.run([sys.executable, "-m", "seg_perception", "doctor", "--model", str(bad),
                        "--engine-dir", str(blocker / "engines")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1
    assert "FAIL  engine directory" in p.stdout and "FAIL  model" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr
