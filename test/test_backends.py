"""Backends: one contract, identical ids. ONNX Runtime FP32 on the CPU is the reference.

CPU tests run everywhere. ``gpu`` tests run the torch CUDA backend and the pycuda buffer path
where a CUDA GPU is present; ``tensorrt`` tests build and run real engines where TensorRT
imports (Jetson, NVIDIA GPU hosts). Both skip with the reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import camvid_root, logs, needs_camvid
from seg_perception.inference.backend import BACKENDS
from seg_perception.inference.factory import (
    choose_backend,
    create_backend,
    tensorrt_available,
    torch_cuda_available,
)
from seg_perception.inference.onnxruntime_backend import resolve_providers
from seg_perception.inference.segmenter import Segmenter

ROOT = Path(__file__).resolve().parent.parent
PARITY = 0.995  # FP32 paths must agree with the ONNX Runtime FP32 reference on 99.5% of pixels


def frames_for(size: tuple[int, int], n: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Real CamVid frames when present (resized), else smooth synthetic ones."""
    h, w = size
    if (camvid_root() / "val").is_dir():
        files = sorted((camvid_root() / "val").glob("*.png"))[:n]
        return [cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (w, h),
                           interpolation=cv2.INTER_AREA) for f in files]
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), np.uint8), (w, h),
                       interpolation=cv2.INTER_CUBIC) for _ in range(n)]


def agreement(a, b, frames: list[np.ndarray]) -> float:
    return float(np.mean([(a.infer(f) == b.infer(f)).mean() for f in frames]))


@pytest.fixture()
def model_dir(tiny_checkpoint, tiny_onnx, tmp_path) -> Path:
    """The shipped layout: <stem>.onnx with its <stem>.pt beside it, in a private directory."""
    shutil.copy(tiny_onnx, tmp_path / "seg.onnx")
    shutil.copy(tiny_checkpoint, tmp_path / "seg.pt")
    return tmp_path




# -- contract and errors ---------------------------------------------------------------------------
def test_onnxruntime_contract(tiny_onnx):
    b = create_backend(tiny_onnx, "onnxruntime", "fp32", threads=1)
    try:
        assert b.name == "onnxruntime" and b.precision == "fp32"
        assert b.info.input_size == (96, 128) and b.info.classes.num_classes == 11
        ids = b.infer(frames_for((96, 128), 1)[0])
        assert ids.shape == (96, 128) and ids.dtype == np.uint8 and ids.max() < 11
        assert b.providers == ("CPUExecutionProvider",)
    finally:
        b.close()


@pytest.mark.parametrize("kwargs,match", [
    ({"backend": "openvino"}, "backend"),
    ({"precision": "bf16"}, "precision"),
    ({"threads": 0}, "threads"),
    ({"threads": "2"}, "threads"),
    ({"backend": "onnxruntime", "dla_core": 0}, "dla_core"),
    # DLA takes fp16 only here, whether or not TensorRT is present (auto would fall back).
    ({"precision": "fp32", "dla_core": 0}, "DLA has no fp32"),
    ({"precision": "int8", "dla_core": 1}, "DLA runs INT8 by implicit quantization only"),
    ({"backend": "onnxruntime", "colour": "red"}, "unknown backend options"),
    ({"backend": "onnxruntime", "providers": ["openvino"]}, "providers"),
    ({"backend": "onnxruntime", "precision": "fp16"}, "fp16"),
    ({"backend": "torch", "precision": "int8"}, "int8"),
    ({"backend": "torch", "device": "tpu"}, "device"),
])
def test_bad_parameters_are_named(model_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_backend(model_dir / "seg.onnx", **kwargs)


def test_missing_and_mismatched_models(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="model not found"):
        create_backend(tmp_path / "nope.onnx", "onnxruntime")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="not a readable ONNX"):
        create_backend(junk, "onnxruntime")
    # torch: the ONNX's checkpoint must be beside it, and be the one it was exported from.
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(model_dir / "seg.onnx", lonely / "seg.onnx")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        create_backend(lonely / "seg.onnx", "torch", device="cpu")
    import torch

    ck = torch.load(model_dir / "seg.pt", weights_only=True)
    ck["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v
                        for k, v in ck["state_dict"].items()}
    torch.save(ck, lonely / "seg.pt")
    with pytest.raises(ValueError, match="not the one"):
        create_backend(lonely / "seg.onnx", "torch", device="cpu")


def test_int8_needs_its_qdq_model(model_dir):
    with pytest.raises(ValueError, match="Q/DQ"):
        create_backend(model_dir / "seg.onnx", "onnxruntime", "int8")


def test_tensorrt_unavailable_is_a_clear_error(model_dir):
    ok, why = tensorrt_available()
    if ok:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(ValueError, match="tensorrt is unavailable") as e:
        create_backend(model_dir / "seg.onnx", "tensorrt", "fp16")
    assert why in str(e.value)


def test_auto_picks_and_logs(model_dir):
    out, opts = logs()
    b = create_backend(model_dir / "seg.onnx", "auto", "fp32", **opts)
    try:
        want = "tensorrt" if tensorrt_available()[0] else "onnxruntime"
        assert b.name == want
        assert any(f"inference backend {want} (fp32)" in m for m in out)
    finally:
        b.close()
    if not tensorrt_available()[0] and not torch_cuda_available():
        out, opts = logs()
        b = create_backend(model_dir / "seg.onnx", "auto", "fp16", **opts)
        assert (b.name, b.precision) == ("onnxruntime", "fp32")
        assert any(m.startswith("WARN") and "fp16 needs a GPU" in m for m in out)
        assert any("[requested auto/fp16]" in m for m in out)
        b.close()
        assert choose_backend("int8", model_dir / "seg.onnx")[:2] == ("onnxruntime", "fp32")
    assert set(BACKENDS) == {"auto", "tensorrt", "onnxruntime", "torch"}


def test_provider_resolution():
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["cpu"], "fp32", avail) == ["CPUExecutionProvider"]
    got = resolve_providers(["tensorrt", "cuda", "cpu"], "fp16", avail)
    assert got[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": True,
                                                    "trt_int8_enable": False})
    assert got[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # INT8 on the TensorRT provider: Q/DQ model (explicit), float layers in fp16.
    got = resolve_providers(["tensorrt"], "int8", avail)
    assert got[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": True,
                                                    "trt_int8_enable": True})
    assert resolve_providers(["tensorrt"], "fp32", avail)[0] == (
        "TensorrtExecutionProvider", {"trt_fp16_enable": False, "trt_int8_enable": False})
    # Not installed: skipped, CPU still there, so one config serves a Jetson and a laptop.
    assert resolve_providers(["cuda"], "fp32", ["CPUExecutionProvider"]) == \
        ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="providers"):
        resolve_providers(["rocm"], "fp32", avail)


# -- parity -------------------------------------------------------------------------------------
def test_torch_cpu_matches_onnxruntime(model_dir):
    ref = create_backend(model_dir / "seg.onnx", "onnxruntime", threads=1)
    tb = create_backend(model_dir / "seg.onnx", "torch", device="cpu", threads=1)
    direct = create_backend(model_dir / "seg.pt", "torch", device="cpu", threads=1)
    try:
        assert tb.info.classes == ref.info.classes and tb.checkpoint == model_dir / "seg.pt"
        assert direct.info.input_size == ref.info.input_size
        frames = frames_for(ref.info.input_size)
        assert agreement(ref, tb, frames) >= PARITY
        assert agreement(ref, direct, frames) >= PARITY
        for f in frames:  # ids alone (no softmax) are the ids of the two-output graph
            ids, conf = tb.infer_with_confidence(f)
            assert np.array_equal(tb.infer(f), ids) and conf.dtype == np.uint8
    finally:
        for b in (ref, tb, direct):
            b.close()


@needs_camvid
def test_shipped_model_parity_on_camvid():
    """The trained model on real frames: torch CPU vs ONNX Runtime, and Q/DQ INT8 (if made)."""
    onnx_path = ROOT / "engines" / "seglite_camvid.onnx"
    if not onnx_path.is_file() or not onnx_path.with_suffix(".pt").is_file():
        pytest.skip(f"trained model and checkpoint not present at {onnx_path.parent}")
    ref = create_backend(onnx_path, "onnxruntime")
    tb = create_backend(onnx_path, "torch", device="cpu")
    try:
        frames = frames_for(ref.info.input_size, n=6)
        assert agreement(ref, tb, frames) >= PARITY
    finally:
        ref.close()
        tb.close()


def test_onnxruntime_int8_runs_the_qdq_model(model_dir):
    from seg_perception.inference.variants import qdq_path_for
    from seg_perception.optimize.quantize import calibration_frames, quantize_int8

    frames = frames_for((96, 128), n=8, seed=3)
    folder = model_dir / "calib"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    quantize_int8(model_dir / "seg.onnx", calibration_frames(folder, (96, 128), progress=False),
                  method="minmax", progress=False)
    ref = create_backend(model_dir / "seg.onnx", "onnxruntime")
    q = create_backend(model_dir / "seg.onnx", "onnxruntime", "int8")
    try:
        assert q.precision == "int8" and q.info.sha256 == ref.info.sha256
        assert agreement(ref, q, frames) > 0.85
        out, opts = logs()
        if not tensorrt_available()[0]:
            a = create_backend(model_dir / "seg.onnx", "auto", "int8", **opts)
            assert (a.name, a.precision) == ("onnxruntime", "int8")
            a.close()
        assert qdq_path_for(model_dir / "seg.onnx").is_file()
    finally:
        ref.close()
        q.close()


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_segmenter_on_camera_sized_frames(model_dir, backend):
    """1920x1080 and 480x360 frames resize to the model input and back, ids at frame size."""
    b = create_backend(model_dir / "seg.onnx", backend, device="cpu") if backend == "torch" \
        else create_backend(model_dir / "seg.onnx", backend)
    try:
        seg = Segmenter(b)
        for h, w in ((1080, 1920), (360, 480)):
            frame = cv2.resize(frames_for((96, 128), 1)[0], (w, h))
            ids = seg.predict(frame)
            assert ids.shape == (h, w) and ids.dtype == np.uint8
    finally:
        b.close()


# -- GPU ------------------------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch_cuda_available(),
                                reason="no CUDA GPU visible to torch")


@pytest.mark.gpu
@needs_cuda
def test_torch_cuda_fp16_parity_and_speed(model_dir):
    ref = create_backend(model_dir / "seg.onnx", "onnxruntime")
    fp32 = create_backend(model_dir / "seg.onnx", "torch", "fp32", device="cuda")
    fp16 = create_backend(model_dir / "seg.onnx", "torch", "fp16", device="cuda")
    try:
        frames = frames_for(ref.info.input_size)
        assert agreement(ref, fp32, frames) >= PARITY
        agree16 = agreement(ref, fp16, frames)
        assert agree16 >= 0.99, f"fp16 agrees on {agree16:.4f}"
        for b in (fp32, fp16):
            for _ in range(10):
                b.infer(frames[0])
            t0 = time.perf_counter()
            for _ in range(50):
                b.infer(frames[0])
            print(f"torch cuda {b.precision}: {(time.perf_counter() - t0) / 50 * 1e3:.2f} ms")
    finally:
        for b in (ref, fp32, fp16):
            b.close()


PYCUDA_SCRIPT = r"""
import threading, numpy as np
from seg_perception.inference.tensorrt.backend import CudaContext, DeviceBuffers
ctx = CudaContext(0)
specs = {"x": ((2, 64, 64, 3), np.dtype(np.uint8)), "y": ((4096,), np.dtype(np.float32))}
bufs = DeviceBuffers(ctx, specs)
results = []
def worker():  # like the node: buffers made on one thread, used on another
    for seed in range(5):
        data = np.random.default_rng(seed).integers(0, 255, (2, 64, 64, 3), np.uint8)
        with ctx.current():
            bufs.upload("x", data)
            bufs.host["x"][:] = 0
            bufs.download("x")
            bufs.synchronize()
        results.append(bool(np.array_equal(bufs.host["x"], data)))
t = threading.Thread(target=worker)
t.start(); t.join()
bufs.free()   # shutdown on the main thread
ctx.release()
print("ROUNDTRIP", all(results) and len(results) == 5)
"""


@pytest.mark.gpu
def test_pycuda_buffers_across_threads_and_clean_exit():
    if importlib.util.find_spec("pycuda") is None:
        pytest.skip("pycuda not installed")
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            pytest.skip("no CUDA GPU")
    except Exception as exc:  # noqa: BLE001 - pycuda raises its own types
        pytest.skip(f"CUDA unavailable: {exc}")
    r = subprocess.run([sys.executable, "-c", PYCUDA_SCRIPT], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ROUNDTRIP True" in r.stdout
    assert "context stack" not in r.stderr.lower(), r.stderr


# -- TensorRT -------------------------------------------------------------------------------------
needs_trt = pytest.mark.skipif(not tensorrt_available()[0],
                               reason=f"TensorRT not usable here: {tensorrt_available()[1]}")


@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_parity_and_cache(model_dir, precision):
    onnx_path = model_dir / "seg.onnx"
    out, opts = logs()
    ref = create_backend(onnx_path, "onnxruntime")
    b = create_backend(onnx_path, "tensorrt", precision, engine_dir=model_dir / "eng",
                       input_size=(96, 128), **opts)
    try:
        frames = frames_for((96, 128))
        need = PARITY if precision == "fp32" else 0.99
        assert agreement(ref, b, frames) >= need
        side = json.loads(b.engine_path.with_suffix(".json").read_text())
        assert side["key"]["precision"] == precision and side["key"]["input_shape"] == \
            [1, 96, 128, 3]
    finally:
        b.close()
    # Second start: cache hit. Then a corrupted engine is rebuilt with a warning.
    out, opts = logs()
    b = create_backend(onnx_path, "tensorrt", precision, engine_dir=model_dir / "eng",
                       input_size=(96, 128), **opts)
    path = b.engine_path
    b.close()
    assert any("using cached" in m for m in out)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out, opts = logs()
    b = create_backend(onnx_path, "tensorrt", precision, engine_dir=model_dir / "eng",
                       input_size=(96, 128), **opts)
    try:
        assert any(m.startswith("WARN") and "corrupt" in m for m in out)
        assert agreement(ref, b, frames_for((96, 128))) >= 0.99
    finally:
        b.close()
        ref.close()


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_int8_from_qdq(model_dir):
    from seg_perception.optimize.quantize import quantize_int8

    onnx_path = model_dir / "seg.onnx"
    quantize_int8(onnx_path, frames_for((96, 128), n=8), progress=False)
    q = create_backend(onnx_path, "onnxruntime", "int8")
    b = create_backend(onnx_path, "tensorrt", "int8", engine_dir=model_dir / "eng",
                       input_size=(96, 128))
    try:
        assert agreement(q, b, frames_for((96, 128))) > 0.95
    finally:
        b.close()
        q.close()


def test_model_contract_is_checked_at_load(tiny_onnx, tmp_path):
    """A model the node cannot serve fails at start, naming what is wrong, not per frame."""
    import onnx

    from seg_perception.inference.modelinfo import read_model_info

    def variant(name: str, edit) -> Path:
        m = onnx.load(str(tiny_onnx))
        edit(m)
        out = tmp_path / name
        onnx.save(m, str(out))
        return out

    def rename_output(m):
        old = m.graph.output[0].name
        m.graph.output[0].name = "ids"
        for n in m.graph.node:
            n.output[:] = ["ids" if o == old else o for o in n.output]

    def zero_size(m):
        for e in m.metadata_props:
            if e.key == "input_size":
                e.value = "0x0"

    with pytest.raises(ValueError, match="needs an output 'labels'"):
        read_model_info(variant("ids.onnx", rename_output))
    with pytest.raises(ValueError, match="input_size '0x0'"):
        read_model_info(variant("zero.onnx", zero_size))

    def palette_out_of_range(m):
        for e in m.metadata_props:
            if e.key == "classes":
                d = json.loads(e.value)
                d["palette"][0] = [300, 0, 0]
                e.value = json.dumps(d)

    # the node would build its colour table from it; uint8 cannot hold 300
    with pytest.raises(ValueError, match="palette colour 0"):
        read_model_info(variant("palette.onnx", palette_out_of_range))
    with pytest.raises(ValueError, match="is a directory"):
        read_model_info(tmp_path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        read_model_info(tmp_path / "junk.onnx")
