"""TensorRT engine cache: keys, sidecars, atomic writes and the rebuild decision.

Pure Python (no TensorRT), so every rule is tested on a CPU. An engine is only valid for the exact
model, TensorRT version, GPU, precision, input shape and DLA core it was built for; the sidecar
JSON next to it records that key plus the engine's own hash, so a stale, foreign, truncated or
corrupt engine is detected before TensorRT ever sees its bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from seg_perception.core.errors import SegPerceptionError
from seg_perception.core.fileio import atomic_write_bytes

SIDECAR_FORMAT = 2  # 2: the key carries the build plan
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"

T = TypeVar("T")
_log = logging.getLogger(__name__)


class EngineBuildError(SegPerceptionError, RuntimeError):
    """TensorRT could not parse or build the network; ``errors`` are TensorRT's own lines."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        self.errors = list(errors or [])
        detail = "".join(f"\n  TensorRT: {e}" for e in self.errors)
        super().__init__(message + (detail or " (TensorRT logged no error)"))


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine's validity depends on."""

    model_sha256: str  # the seg_perception ONNX the node was given
    network_sha256: str  # the ONNX TensorRT parsed (Q/DQ or fp16-converted), may equal the above
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: str
    input_shape: tuple[int, int, int, int]  # (1, H, W, 3)
    dla_core: int = -1  # -1: GPU only
    build_plan: str = ""  # flags, typing mode, network recipe: a changed plan is another engine
    # SMs and memory: Jetson Orin modules (AGX, NX, Nano) all report one name and SM 8.7
    gpu_detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineKey:
        names = {f.name for f in fields(cls)}
        missing = names - set(d)
        if missing:
            raise ValueError(f"engine key lacks {sorted(missing)}")
        vals = {k: d[k] for k in names}
        vals["input_shape"] = tuple(int(v) for v in d["input_shape"])
        vals["dla_core"] = int(d["dla_core"])
        vals["build_plan"] = str(d["build_plan"])
        return cls(**vals)

    def differences(self, other: EngineKey) -> list[str]:
        """Names of the fields that differ, for a warning a person can act on."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def file_name(self, model_stem: str) -> str:
        """Engines for other GPUs, TensorRT versions, shapes or DLA cores get other names, so one
        directory can serve several machines; a changed model reuses the name (stale -> rebuilt)."""
        _, h, w, _ = self.input_shape
        dla = f".dla{self.dla_core}" if self.dla_core >= 0 else ""
        return (f"{model_stem}.{self.precision}.{h}x{w}{dla}.{gpu_slug(self)}"
                f".trt{self.trt_version}{ENGINE_SUFFIX}")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def gpu_slug(key: EngineKey) -> str:
    """'orin-nvgpu-sm87-14sm-29gib': name, compute capability and size, for file names."""
    cc = key.compute_capability.replace(".", "")
    detail = f"-{slug(key.gpu_detail)}" if key.gpu_detail else ""
    return f"{slug(key.gpu_name)}-sm{cc}{detail}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sidecar_path(engine: str | Path) -> Path:
    return Path(engine).with_suffix(SIDECAR_SUFFIX)


def timing_cache_path(engine_dir: str | Path, key: EngineKey) -> Path:
    """One timing cache per GPU and TensorRT version: it speeds up every later build there."""
    return Path(engine_dir) / f"timing.{gpu_slug(key)}.trt{key.trt_version}.cache"


def write_engine(engine_path: str | Path, engine: bytes, key: EngineKey,
                 extra: dict[str, Any] | None = None) -> Path:
    """Engine first, sidecar second: a crash between the two leaves an engine whose hash does
    not match the (old or missing) sidecar, which is then rebuilt rather than trusted."""
    engine_path = Path(engine_path)
    atomic_write_bytes(engine_path, engine)
    side = {
        "format": SIDECAR_FORMAT,
        "key": key.to_dict(),
        "engine_file": engine_path.name,
        "engine_sha256": sha256_bytes(engine),
        "engine_bytes": len(engine),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    atomic_write_bytes(sidecar_path(engine_path), (json.dumps(side, indent=2) + "\n").encode())
    return engine_path


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    p = sidecar_path(engine_path)
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{p}: not a format-{SIDECAR_FORMAT} engine sidecar")
    return data


def check_engine(engine_path: str | Path, key: EngineKey) -> tuple[str | None, bytes | None]:
    """(None, engine bytes) when the engine may be deserialised, else (reason, None).

    Reasons start with one word: missing, foreign, stale or corrupt.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return "missing", None
    try:
        side = read_sidecar(engine_path)
        built_for = EngineKey.from_dict(side["key"])
    except FileNotFoundError:
        return f"foreign: no sidecar {sidecar_path(engine_path).name}", None
    except (ValueError, KeyError, TypeError) as exc:
        return f"foreign: unreadable sidecar ({exc})", None
    diff = built_for.differences(key)
    if diff:
        detail = ", ".join(f"{n} {getattr(built_for, n)!r} != {getattr(key, n)!r}" for n in diff)
        return f"stale: built for another configuration ({detail})", None
    data = engine_path.read_bytes()
    if len(data) != side.get("engine_bytes") or sha256_bytes(data) != side.get("engine_sha256"):
        return (f"corrupt: {len(data)} bytes with sha256 {sha256_bytes(data)[:12]}, sidecar says "
                f"{side.get('engine_bytes')} bytes, {str(side.get('engine_sha256'))[:12]}"), None
    return None, data


@contextlib.contextmanager
def build_lock(engine_path: str | Path, timeout_s: float = 3600.0) -> Iterator[None]:
    """An exclusive lock file so nodes starting together build an engine once, not once each."""
    from filelock import FileLock, Timeout

    lock = Path(engine_path).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock), timeout=timeout_s):
            yield
    except Timeout:
        raise TimeoutError(f"{lock} held elsewhere for {timeout_s:.0f} s") from None


@dataclass
class Resolved(Generic[T]):
    path: Path
    loaded: T
    built: bool  # True when this call built the engine
    reason: str | None  # why it was built (None: cache hit)


def obtain_engine(engine_path: str | Path, key: EngineKey, build: Callable[[], bytes],
                  load: Callable[[bytes], T | None], force_rebuild: bool = False,
                  extra: dict[str, Any] | None = None) -> Resolved[T]:
    """The cached engine if it is valid and loads, else a fresh build (written atomically).

    ``load`` returns None or raises when bytes cannot be deserialised; a cached engine that fails
    to load is rebuilt with a warning, a freshly built one that fails is an error.
    """
    engine_path = Path(engine_path)
    reason, data = ("force_rebuild requested", None) if force_rebuild else \
        check_engine(engine_path, key)
    if data is not None:
        loaded, why = _try_load(load, data)
        if why is None:
            _log.info(f"using cached TensorRT engine {engine_path}")
            # why the ignore below: loaded is not None once _try_load reported no error
            return Resolved(engine_path, loaded, False, None)  # type: ignore[arg-type]
        reason = f"corrupt: deserialisation failed ({why})"
    with build_lock(engine_path):
        if not force_rebuild:
            # Whatever sent us here (missing, stale, corrupt), a node that held the lock before
            # us may have built the engine this key needs: check again before building.
            again, fresh = check_engine(engine_path, key)
            if fresh is not None and fresh != data:
                loaded, why = _try_load(load, fresh)
                if why is None:
                    _log.info(f"using TensorRT engine {engine_path} built by another process")
                    # why the ignore below: as above
                    return Resolved(engine_path, loaded, False, None)  # type: ignore[arg-type]
            reason = again or reason
        assert reason is not None
        if reason == "missing":
            _log.info(f"no cached TensorRT engine {engine_path.name}; building it (minutes)")
        else:
            _log.warning(f"not running engine {engine_path}: {reason}; rebuilding it")
        t0 = time.monotonic()
        engine = build()
        if not engine:
            raise RuntimeError(f"TensorRT returned no engine for {engine_path.name}")
        loaded, why = _try_load(load, engine)
        if why is not None:
            raise RuntimeError(f"a freshly built engine does not deserialise: {why}")
        meta = {"build_seconds": round(time.monotonic() - t0, 1), **(extra or {})}
        write_engine(engine_path, engine, key, meta)
        _log.info(f"wrote TensorRT engine {engine_path} ({len(engine) / 1e6:.1f} MB, "
            f"{meta['build_seconds']} s)")
        return Resolved(engine_path, loaded, True, reason)  # type: ignore[arg-type]  # as above


def _try_load(load: Callable[[bytes], T | None], data: bytes) -> tuple[T | None, str | None]:
    """(object, None), or (None, why it could not be loaded)."""
    try:
        obj = load(data)
    except Exception as exc:  # noqa: BLE001 - TensorRT raises RuntimeError and others
        return None, f"{type(exc).__name__}: {exc}"
    return (None, "deserialiser returned nothing") if obj is None else (obj, None)
