"""Engine cache rules on the CPU: keys, sidecars, atomic writes, stale/foreign/corrupt engines.

Engines here are opaque byte strings with a magic header; ``load`` plays TensorRT's
deserialiser by refusing anything without it. That exercises our decision logic, which is all
this module owns, and the real deserialiser is exercised by the tensorrt-marked tests.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import multiprocessing as mp
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from seg_perception.core.fileio import atomic_write_bytes
from seg_perception.core.logs import collected
from seg_perception.inference.tensorrt.build import parse_version, plan_build, strongly_typed
from seg_perception.inference.tensorrt.cache import (
    EngineKey,
    check_engine,
    obtain_engine,
    sidecar_path,
    timing_cache_path,
    write_engine,
)

MAGIC = b"FAKEPLAN"

KEY = EngineKey(model_sha256="a" * 64, network_sha256="b" * 64, trt_version="10.3.0",
                gpu_name="Orin (nvgpu)", compute_capability="8.7", precision="fp16",
                input_shape=(1, 360, 480, 3), dla_core=-1)


def load(data: bytes) -> bytes | None:
    return data if data.startswith(MAGIC) else None


class Builder:
    def __init__(self, payload: bytes = MAGIC + b"engine-v1") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self) -> bytes:
        self.calls += 1
        return self.payload


class Logs:
    def __init__(self) -> None:
        self.info: list[str] = []
        self.warnings: list[str] = []


def resolve(tmp_path: Path, key: EngineKey = KEY, builder: Builder | None = None,
            force: bool = False, logs: Logs | None = None):
    builder = builder or Builder()
    logs = logs or Logs()
    path = tmp_path / key.file_name("seglite")
    with collected() as lines:
        r = obtain_engine(path, key, builder, load, force, {"classes": ["Sky"]})
    logs.info += [m for m in lines if not m.startswith("WARN ")]
    logs.warnings += [m.removeprefix("WARN ") for m in lines if m.startswith("WARN ")]
    return r, builder, logs


def test_key_round_trip_and_file_name():
    assert EngineKey.from_dict(json.loads(json.dumps(KEY.to_dict()))) == KEY
    name = KEY.file_name("seglite_camvid")
    assert name == "seglite_camvid.fp16.360x480.orin-nvgpu-sm87.trt10.3.0.engine"
    dla = replace(KEY, dla_core=1, precision="int8").file_name("m")
    assert ".int8." in dla and ".dla1." in dla
    # Every field that changes the engine changes the key; GPU/TRT/shape/DLA also the name.
    for field, value in [("gpu_name", "NVIDIA H100"), ("compute_capability", "9.0"),
                         ("trt_version", "10.12.0"), ("input_shape", (1, 720, 960, 3)),
                         ("dla_core", 0), ("precision", "int8")]:
        other = replace(KEY, **{field: value})
        assert other != KEY and other.differences(KEY) == [field]
        assert other.file_name("m") != KEY.file_name("m")
    assert replace(KEY, model_sha256="c" * 64).file_name("m") == KEY.file_name("m")


def test_builds_once_then_hits_cache(tmp_path):
    r, b, logs = resolve(tmp_path)
    assert r.built and r.reason == "missing" and b.calls == 1 and r.loaded.startswith(MAGIC)
    side = json.loads(sidecar_path(r.path).read_text())
    assert side["key"] == KEY.to_dict() and side["classes"] == ["Sky"]
    assert side["engine_bytes"] == len(b.payload) and "build_seconds" in side
    assert not logs.warnings
    r2, b2, logs2 = resolve(tmp_path)
    assert not r2.built and b2.calls == 0 and r2.loaded == b.payload
    assert any("using cached" in m for m in logs2.info)


def test_force_rebuild(tmp_path):
    resolve(tmp_path)
    r, b, logs = resolve(tmp_path, builder=Builder(MAGIC + b"v2"), force=True)
    assert r.built and b.calls == 1 and r.path.read_bytes() == MAGIC + b"v2"
    assert any("force_rebuild" in w for w in logs.warnings)


@pytest.mark.parametrize("damage,word", [
    ("truncate", "corrupt"), ("flip", "corrupt"), ("no_sidecar", "foreign"),
    ("bad_sidecar", "foreign"), ("stale_model", "stale"), ("other_gpu", "stale"),
    ("undeserialisable", "corrupt")])
def test_bad_engines_are_rebuilt_with_a_warning(tmp_path, damage, word):
    r, _, _ = resolve(tmp_path)
    engine, side = r.path, sidecar_path(r.path)
    if damage == "truncate":
        engine.write_bytes(engine.read_bytes()[:5])
    elif damage == "flip":
        data = bytearray(engine.read_bytes())
        data[-1] ^= 0xFF
        engine.write_bytes(bytes(data))
    elif damage == "no_sidecar":
        side.unlink()
    elif damage == "bad_sidecar":
        side.write_text("{not json")
    elif damage in ("stale_model", "other_gpu"):
        d = json.loads(side.read_text())
        field = "model_sha256" if damage == "stale_model" else "gpu_name"
        d["key"][field] = "something else"
        side.write_text(json.dumps(d))
    elif damage == "undeserialisable":  # hash-consistent bytes TensorRT would still refuse
        write_engine(engine, b"not a plan", KEY)
    reason, data = check_engine(engine, KEY)
    if damage != "undeserialisable":
        assert reason is not None and reason.startswith(word) and data is None
    r2, b2, logs = resolve(tmp_path, builder=Builder(MAGIC + b"fresh"))
    assert r2.built and b2.calls == 1 and r2.loaded == MAGIC + b"fresh"
    assert len(logs.warnings) == 1 and word in logs.warnings[0]
    assert check_engine(engine, KEY) == (None, MAGIC + b"fresh")


def test_stale_warning_names_the_field(tmp_path):
    resolve(tmp_path)
    newer = replace(KEY, model_sha256="d" * 64)
    reason, _ = check_engine(tmp_path / KEY.file_name("seglite"), newer)
    assert reason is not None and "model_sha256" in reason and "gpu_name" not in reason


def test_failed_build_leaves_the_old_engine_untouched(tmp_path):
    r, b, _ = resolve(tmp_path)

    def broken() -> bytes:
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        obtain_engine(r.path, KEY, broken, load, True, None)
    assert check_engine(r.path, KEY) == (None, b.payload)
    with pytest.raises(RuntimeError, match="does not deserialise"):
        obtain_engine(r.path, KEY, lambda: b"garbage", load, True, None)
    assert check_engine(r.path, KEY) == (None, b.payload)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _writer_killed_before_rename(path: str, ready) -> None:
    """Child: all bytes written, then it hangs in fsync (as a crash or power loss would stop it)
    until the parent kills it."""
    def hang(fd: int) -> None:
        ready.set()
        time.sleep(60)

    os.fsync = hang
    atomic_write_bytes(path, b"new engine " * 100_000)


def test_atomic_write_survives_a_kill(tmp_path):
    target = tmp_path / "e.engine"
    atomic_write_bytes(target, b"old")
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_writer_killed_before_rename, args=(str(target), ready))
    p.start()
    assert ready.wait(20), "writer never reached fsync"
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert target.read_bytes() == b"old", "a killed write must leave the old file intact"
    leftovers = [f.name for f in tmp_path.iterdir() if f != target]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")
    assert check_engine(target, KEY)[0].startswith("foreign")  # no sidecar: never trusted
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_timing_cache_path_is_per_gpu_and_version(tmp_path):
    a = timing_cache_path(tmp_path, KEY)
    assert a.parent == tmp_path and "sm87" in a.name and "10.3.0" in a.name
    assert timing_cache_path(tmp_path, replace(KEY, gpu_name="NVIDIA H100")) != a
    assert timing_cache_path(tmp_path, replace(KEY, precision="int8")) == a


def test_versions_and_typing_mode():
    assert parse_version("10.3.0.30") == (10, 3, 0, 30)
    assert parse_version("8.6.2") == (8, 6, 2)
    assert parse_version("10.13.0.post1") == (10, 13, 0)
    assert not strongly_typed("8.6.2") and not strongly_typed("10.3.0")
    assert not strongly_typed("10.11.0")
    assert strongly_typed("10.12.0") and strongly_typed("11.0.1")
    with pytest.raises(ValueError):
        parse_version("unknown")


def test_build_plans_per_version_and_precision(tiny_onnx, tmp_path):
    from seg_perception.inference.modelinfo import read_model_info
    from seg_perception.inference.variants import qdq_path_for
    from seg_perception.optimize.quantize import quantize_int8

    info = read_model_info(tiny_onnx)
    p = plan_build(info, "fp16", (96, 128), "10.3.0", work_dir=tmp_path)
    assert p.flags == ("FP16",) and not p.strongly_typed and p.network_onnx == tiny_onnx
    assert p.input_shape == (1, 96, 128, 3) and p.input_name == "image"
    if importlib.util.find_spec("onnxconverter_common"):  # fp16 conversion for strong typing
        p = plan_build(info, "fp16", (96, 128), "10.12.0", work_dir=tmp_path)
        assert p.strongly_typed and p.flags == () and p.network_onnx.parent == tmp_path
    fp32 = plan_build(info, "fp32", (64, 64), "8.6.1")
    assert fp32.flags == () and fp32.cleared == ("TF32",)  # fp32 means fp32, not TF32
    assert "cleared=TF32" in fp32.key_text()
    assert plan_build(info, "fp16", (64, 64), "8.6.1").cleared == ()
    with pytest.raises(ValueError, match="dla_core"):
        plan_build(info, "fp32", (96, 128), "10.3.0", dla_core=0)
    # DLA takes INT8 only from calibrator scales (implicit), never Q/DQ layers (explicit).
    with pytest.raises(ValueError, match="dla_core: DLA runs INT8 by implicit quantization"):
        plan_build(info, "int8", (96, 128), "10.3.0", dla_core=0)
    with pytest.raises(ValueError, match="input_size"):
        plan_build(info, "fp16", (8, 128), "10.3.0")
    qdq = qdq_path_for(tiny_onnx)
    if qdq.exists():
        qdq.unlink()
    with pytest.raises(ValueError, match="calib"):
        plan_build(info, "int8", (96, 128), "10.3.0")
    import numpy as np

    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), np.uint8) for i in range(2)]
    quantize_int8(tiny_onnx, frames, progress=False)
    try:
        weak = plan_build(info, "int8", (96, 128), "10.3.0")
        assert weak.network_onnx == qdq and weak.flags == ("INT8", "FP16")
        strong = plan_build(info, "int8", (96, 128), "11.0.0")
        assert strong.network_onnx == qdq and strong.flags == () and strong.strongly_typed
    finally:
        qdq.unlink()


def test_atomic_write_keeps_normal_permissions(tmp_path):
    import os

    from seg_perception.core.fileio import atomic_write_bytes

    umask = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "x.bin", b"abc")
    finally:
        os.umask(umask)
    assert p.read_bytes() == b"abc"
    assert (p.stat().st_mode & 0o777) == 0o644


def _node_opening_the_cache(path: str, key: dict, builds: str, go) -> None:
    """Child process: one node of ``cameras:=front,left,right`` resolving its engine."""
    def build() -> bytes:
        with open(builds, "a") as f:  # one line per build actually run
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # a build takes a while: the others queue on the lock meanwhile
        return MAGIC + b"engine-v2"

    go.wait()
    obtain_engine(path, EngineKey.from_dict(key), build, load, False, None)


@pytest.mark.parametrize("before", ["missing", "stale", "corrupt"])
def test_nodes_started_together_build_once_whatever_the_reason(tmp_path, before):
    """After a model update every node finds the engine stale; only the first to take the lock
    rebuilds, the others re-check after waiting and load its engine."""
    new_key = replace(KEY, model_sha256="e" * 64)
    path = tmp_path / KEY.file_name("seglite")
    if before == "stale":
        write_engine(path, MAGIC + b"engine-v1", KEY)
    elif before == "corrupt":
        write_engine(path, MAGIC + b"engine-v1", new_key)
        path.write_bytes(MAGIC + b"truncat")
    builds = tmp_path / "builds.txt"
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_node_opening_the_cache,
                         args=(str(path), new_key.to_dict(), str(builds), go)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(builds.read_text().splitlines()) == 1
    assert check_engine(path, new_key) == (None, MAGIC + b"engine-v2")


def test_a_changed_build_plan_is_another_engine(tmp_path):
    r, _, _ = resolve(tmp_path)
    other = replace(KEY, build_plan="weak;flags=FP16,INT8")
    reason, _ = check_engine(r.path, other)
    assert reason is not None and reason.startswith("stale") and "build_plan" in reason


def test_plan_key_text_names_flags_typing_and_network_recipe(tiny_onnx, tmp_path,
                                                             monkeypatch):
    """Flags, typing and how a converted network was made key the engine; the workspace limit
    does not (a build-time bound: the engine runs the same)."""
    from seg_perception.inference import variants
    from seg_perception.inference.modelinfo import read_model_info

    info = read_model_info(tiny_onnx)
    weak = plan_build(info, "fp16", (96, 128), "10.3.0", -1, tmp_path)
    assert weak.key_text() == "weak;flags=FP16" and weak.network_recipe == ""
    if not importlib.util.find_spec("onnxconverter_common"):
        return
    strong = plan_build(info, "fp16", (96, 128), "10.13.0", -1, tmp_path)
    conv = importlib.metadata.version("onnxconverter-common")
    assert strong.key_text() == (f"strong;flags=;network=fp16-v{variants.FP16_RECIPE}"
                                 f"-onnxconverter-common-{conv}")
    monkeypatch.setattr(variants, "FP16_RECIPE", variants.FP16_RECIPE + 1)
    assert plan_build(info, "fp16", (96, 128), "10.13.0", -1, tmp_path).key_text() != \
        strong.key_text()
    assert plan_build(info, "fp32", (96, 128), "10.13.0").network_recipe == ""
