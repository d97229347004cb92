"""Building TensorRT engines from a seg_perception ONNX, for every TensorRT the node meets.

* TensorRT 8.6 (JetPack 6.0) and 10.0-10.11 (JetPack 6.1/6.2 ship 10.3): weakly typed network
  from the float ONNX, precision by builder flags (FP16; INT8 from the Q/DQ ONNX plus FP16 for
  the layers left in float).
* TensorRT 10.12+ and 11 (the precision flags deprecated in 10.12, gone in 11): a strongly typed
  network, the precision carried by the ONNX itself: fp16-converted, or the Q/DQ model.

The input shape is fixed at the node's input size (one optimisation profile, min = opt = max),
which gives the fastest engine. An fp32 engine computes in fp32: TensorRT enables TF32 (10-bit
mantissa convolutions on Ampere and later, Orin included) by default, and the plan clears it.
The timing cache is shared by every build on one GPU and TensorRT version, so a build merges
its entries into the file under a lock instead of overwriting what another build wrote.

Only ``build_serialized`` and the TensorRT callback classes import tensorrt; the rest is plain
Python and tested on a CPU.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_perception.core.fileio import atomic_write_bytes
from seg_perception.inference.modelinfo import ModelInfo
from seg_perception.inference.tensorrt.cache import EngineBuildError, build_lock
from seg_perception.inference.variants import find_qdq, fp16_model, fp16_recipe

STRONG_TYPING_FROM = (10, 12)
_log = logging.getLogger(__name__)


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); non-numeric tails ('10.13.0.post1') are dropped."""
    out: list[int] = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        out.append(int(digits))
    if not out:
        raise ValueError(f"cannot parse TensorRT version {text!r}")
    return tuple(out)


def strongly_typed(version: str) -> bool:
    """True where the precision must come from the ONNX (TensorRT >= 10.12)."""
    return parse_version(version)[:2] >= STRONG_TYPING_FROM


@dataclass(frozen=True)
class BuildPlan:
    """What one build does; decided without TensorRT so the rules can be tested anywhere."""

    network_onnx: Path  # the ONNX handed to the parser
    strongly_typed: bool
    flags: tuple[str, ...]  # BuilderFlag names to set
    input_name: str
    input_shape: tuple[int, int, int, int]
    dla_core: int
    cleared: tuple[str, ...] = ()  # BuilderFlag names on by default, to clear
    network_recipe: str = ""  # how a network converted here was made ("" for the given ONNX)

    def key_text(self) -> str:
        """What of the plan, besides model, shape and DLA core, makes an engine different.

        Not the workspace limit: it bounds the builder's scratch memory, and the engine runs
        the same whatever it was (a node must not rebuild what ``build-engine`` made with
        another one)."""
        typing = "strong" if self.strongly_typed else "weak"
        cleared = f";cleared={','.join(sorted(self.cleared))}" if self.cleared else ""
        recipe = f";network={self.network_recipe}" if self.network_recipe else ""
        return f"{typing};flags={','.join(sorted(self.flags))}{cleared}{recipe}"

    def describe(self) -> dict[str, Any]:
        return {"network_onnx": self.network_onnx.name, "strongly_typed": self.strongly_typed,
                "flags": list(self.flags), "cleared_flags": list(self.cleared),
                "input_shape": list(self.input_shape),
                "dla_core": self.dla_core, "network_recipe": self.network_recipe}


def check_dla(dla_core: int, precision: str) -> None:
    """ValueError for a DLA build that would not run on DLA: fp32 (DLA has none) or int8.

    NVIDIA's DLA takes INT8 only by implicit quantization (calibrator scales); the Q/DQ layers
    of an explicitly quantized model fall back to the GPU, with the convolutions between them,
    so an int8 "DLA" engine would run on the GPU under a .dla name.
    """
    if dla_core < 0:
        return
    if precision == "fp32":
        raise ValueError("dla_core: DLA has no fp32; choose precision fp16")
    if precision == "int8":
        raise ValueError("dla_core: DLA runs INT8 by implicit quantization only (a calibrator's "
                         "scales), not the Q/DQ layers of the int8 model, which would all fall "
                         "back to the GPU; choose precision fp16 on DLA, or int8 with "
                         "dla_core -1")


def plan_build(info: ModelInfo, precision: str, input_size: tuple[int, int], trt_version: str,
               dla_core: int = -1, work_dir: str | Path | None = None) -> BuildPlan:
    """Picks the network ONNX and builder flags for ``precision`` on ``trt_version``.

    int8 needs the calibrated Q/DQ model beside the float one (ValueError saying how to make it);
    fp16 on a strongly typed TensorRT writes an fp16-converted ONNX into ``work_dir``.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    h, w = (int(v) for v in input_size)
    if min(h, w) < 16:
        raise ValueError(f"input_size must be [height, width] >= 16, got {input_size}")
    check_dla(dla_core, precision)
    strong = strongly_typed(trt_version)
    flags: list[str] = []
    onnx_path = info.path
    recipe = ""
    if precision == "int8":
        onnx_path = find_qdq(info.path)
        if not strong:
            flags += ["INT8", "FP16"]  # FP16 for the layers the Q/DQ model leaves in float
    elif precision == "fp16":
        if strong:
            out = Path(work_dir or tempfile.mkdtemp(prefix="seg_trt_")) / \
                f"{info.path.stem}.fp16.onnx"
            out.write_bytes(fp16_model(info.path).SerializeToString())
            onnx_path = out
            recipe = fp16_recipe()
        else:
            flags.append("FP16")
    if dla_core >= 0:
        flags.append("GPU_FALLBACK")  # layers DLA cannot run (uint8 I/O, ArgMax) go to the GPU
    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    cleared = ("TF32",) if precision == "fp32" else ()
    return BuildPlan(Path(onnx_path), strong, tuple(flags), g.input[0].name, (1, h, w, 3),
                     int(dla_core), cleared, recipe)


# -- TensorRT from here on ------------------------------------------------------------------------
def make_progress_monitor(trt: Any) -> Any:  # noqa: ANN401 - tensorrt module / IProgressMonitor
    """A tqdm bar per builder phase (TensorRT >= 10), nested under its parent phase."""
    import threading

    from tqdm import tqdm

    class TqdmProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}
            self._depth: dict[str, int] = {}
            self._lock = threading.Lock()  # TensorRT may call from several threads

        def phase_start(self, phase_name: str, parent_phase: str | None,
                        num_steps: int) -> None:
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=depth,
                                              leave=depth == 0, unit="step")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                self._depth.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    return TqdmProgress()


_LOGGERS: dict[int, tuple[Any, Any]] = {}  # id(tensorrt module) -> (module, logger)
_LOGGERS_LOCK = threading.Lock()


def trt_logger(trt: Any) -> Any:  # noqa: ANN401 - tensorrt module / ILogger
    """The process's one TensorRT logger: routes TensorRT's warnings and errors to this
    package's logger, at their level.

    One, because TensorRT keeps a single logger pointer while any builder or runtime lives and
    ignores a different one passed later (its ILogger notes): a build's own logger would miss the
    build's errors whenever a runtime already existed. The logger keeps the last error lines;
    ``mark``/``errors_since`` give one build its own, so a failed build carries TensorRT's words
    to whoever decides what to do next (fall back, or stop with them).
    """
    with _LOGGERS_LOCK:
        found = _LOGGERS.get(id(trt))
        if found is not None and found[0] is trt:
            return found[1]

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self._errors: list[tuple[int, str]] = []
                self._count = 0
                self._lock = threading.Lock()  # builds in several threads log concurrently

            @property
            def errors(self) -> list[str]:
                with self._lock:
                    return [m for _, m in self._errors]

            def mark(self) -> int:
                with self._lock:
                    return self._count

            def errors_since(self, mark: int) -> list[str]:
                with self._lock:
                    return [m for n, m in self._errors if n >= mark]

            def log(self, severity: Any, msg: str) -> None:  # noqa: ANN401 - ILogger.Severity
                if int(severity) <= int(trt.ILogger.Severity.ERROR):
                    with self._lock:
                        self._errors = [*self._errors[-19:], (self._count, msg)]
                        self._count += 1
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    level = logging.ERROR if int(severity) <= int(trt.ILogger.Severity.ERROR) \
                        else logging.WARNING
                    _log.log(level, f"TensorRT {str(severity).rsplit('.', 1)[-1].lower()}: {msg}")

        logger = Logger()
        _LOGGERS[id(trt)] = (trt, logger)  # the module held, so its id is never reused
        return logger


def save_timing_cache(config: Any, path: Path) -> None:  # noqa: ANN401 - IBuilderConfig
    """Merges this build's timing cache with the file's current one, under the file's lock:
    another build on this GPU (another model or precision) may have written it meanwhile."""
    cache = config.get_timing_cache()
    with build_lock(path):
        if path.is_file():
            theirs = config.create_timing_cache(path.read_bytes())
            if theirs is None or not cache.combine(theirs, ignore_mismatch=False):
                _log.info(f"timing cache {path} is not this GPU/TensorRT's; replacing it")
        atomic_write_bytes(path, bytes(cache.serialize()))


def build_serialized(plan: BuildPlan, timing_cache: Path | None = None, workspace_mb: int = 1024,
                     progress: bool = True) -> bytes:
    """Parses ``plan.network_onnx`` and builds a serialised engine; persists the timing cache."""
    import tensorrt as trt

    logger = trt_logger(trt)
    mark = logger.mark()
    builder = trt.Builder(logger)
    flags = 0
    major = parse_version(trt.__version__)[0]
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed:  # the project's choice on 10.12-10.x; accepted and ignored on 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.network_onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT cannot parse {plan.network_onnx.name}",
                               errors or logger.errors_since(mark))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.cleared:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core >= 0:
        cores = int(builder.num_DLA_cores)
        if plan.dla_core >= cores:
            raise EngineBuildError(
                f"dla_core {plan.dla_core}: TensorRT {trt.__version__} sees {cores} DLA core(s) "
                "on this device (DLA is on Jetson AGX and NX Orin, with TensorRT up to 10.7 as "
                "JetPack 6 ships it, or 11.4.1 on AGX Orin with JetPack 7.2.2; NVIDIA's 10.8 to "
                "11.3 have no DLA); use dla_core -1",
                logger.errors_since(mark))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    profile = builder.create_optimization_profile()
    shape = plan.input_shape
    profile.set_shape(plan.input_name, shape, shape, shape)
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)  # None for bytes TensorRT cannot read
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        _log.info(f"timing cache {timing_cache} does not match this GPU/TensorRT; starting a "
                  "new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    monitor = None
    if progress and hasattr(trt, "IProgressMonitor"):
        monitor = make_progress_monitor(trt)
        config.progress_monitor = monitor  # must outlive the build: kept in this frame
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {plan.network_onnx.name}",
                               logger.errors_since(mark))
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)
    del monitor
    return bytes(engine)
