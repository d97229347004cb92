"""Build rules that only show on a real GPU, pinned on the TensorRT stand-in: the DLA core a
plan asks for must exist, concurrent builds on one GPU keep each other's timing-cache entries,
and engine tensor types NumPy lacks are named, not a KeyError."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from standin._plan import peek, read_cache
from standin_fixtures import trt_standin_fixture  # noqa: F401 - provides `trt_standin`

from seg_perception.inference.tensorrt.cache import EngineBuildError

SIZE = (96, 128)


@pytest.fixture()
def model_dir(tiny_onnx: Path, tmp_path: Path) -> Path:
    shutil.copy(tiny_onnx, tmp_path / "seg.onnx")
    return tmp_path


def timing_entries(engine_dir: Path) -> dict:
    (tc,) = engine_dir.glob("timing.*.cache")
    return read_cache(tc.read_bytes())[1]


@pytest.mark.parametrize("trt_standin", ["10.3.0"], indirect=True)
def test_a_dla_core_the_device_lacks_is_refused_before_building(trt_standin, model_dir):
    """Orin has DLA cores 0 and 1: core 2 is refused with the count, and nothing is built."""
    from seg_perception.inference.tensorrt.backend import resolve_engine

    with pytest.raises(EngineBuildError, match=r"dla_core 2: TensorRT 10\.3\.0 sees 2 DLA"):
        resolve_engine(model_dir / "seg.onnx", "fp16", SIZE, model_dir / "eng", dla_core=2,
                       progress=False)
    assert trt_standin.controls.build_calls == 0


@pytest.mark.parametrize("trt_standin", ["10.3.0"], indirect=True)
def test_concurrent_builds_keep_each_others_timing_cache_entries(trt_standin, model_dir,
                                                                 tmp_path_factory):
    """fp16 and fp32 built at once (each starts from the same, empty cache) leave the entries
    of both in the shared file: the same file two builds one after the other leave."""
    from seg_perception.inference.tensorrt.backend import resolve_engine

    trt_standin.controls.build_delay_s = 0.3
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def build(precision: str) -> None:
        try:
            barrier.wait(10)
            resolve_engine(model_dir / "seg.onnx", precision, SIZE, model_dir / "eng",
                           progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(p,)) for p in ("fp16", "fp32")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    trt_standin.controls.build_delay_s = 0.0
    seq = tmp_path_factory.mktemp("sequential")
    for precision in ("fp16", "fp32"):
        resolve_engine(model_dir / "seg.onnx", precision, SIZE, seq, progress=False)
    both = timing_entries(model_dir / "eng")
    assert both == timing_entries(seq)


@pytest.mark.parametrize("trt_standin", ["10.3.0"], indirect=True)
def test_fp32_engines_are_built_without_tf32(trt_standin, model_dir):
    """TF32 is on by default in TensorRT: an fp32 plan clears it, an fp16 plan leaves it."""
    from seg_perception.inference.tensorrt.backend import resolve_engine
    from seg_perception.inference.tensorrt.cache import read_sidecar

    for precision, tf32 in (("fp32", False), ("fp16", True)):
        path = resolve_engine(model_dir / "seg.onnx", precision, SIZE, model_dir / "eng",
                              progress=False)
        assert ("TF32" in peek(path.read_bytes())["flags"]) is tf32, precision
        assert read_sidecar(path)["build"]["cleared_flags"] == ([] if tf32 else ["TF32"])


def test_tensor_types_numpy_lacks_are_named(trt_standin):
    from seg_perception.inference.tensorrt.backend import _np_dtype

    trt = trt_standin.trt
    assert _np_dtype(trt, trt.DataType.UINT8).name == "uint8"
    with pytest.raises(TypeError, match="BF16 has no NumPy type"):
        _np_dtype(trt, trt.DataType.BF16)
