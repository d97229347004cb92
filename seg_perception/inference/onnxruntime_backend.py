"""ONNX Runtime backend: the CPU path everywhere, CUDA/TensorRT providers when installed.

fp32 runs the model as exported; int8 runs its calibrated Q/DQ model (``<stem>.int8.onnx``,
see quantize.py), which is the same network TensorRT builds its INT8 engine from; fp16 needs the
CUDA or TensorRT provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seg_perception.core.errors import OptionError
from seg_perception.inference.modelinfo import read_model_info
from seg_perception.inference.variants import find_qdq, fp16_model
from seg_perception.model.contract import CONFIDENCE_NAME, LABELS_NAME

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def resolve_providers(requested: Sequence[str], precision: str,
                      available: Sequence[str]) -> list[str | tuple[str, dict[str, object]]]:
    """Requested providers that this onnxruntime has, in order, with CPU always last.

    Short names (cpu, cuda, tensorrt) or full provider names; an unknown name is an error, a known
    but unavailable one is skipped, so one configuration works on a Jetson and a laptop.
    """
    chosen: list[str | tuple[str, dict[str, object]]] = []
    for r in requested:
        full = PROVIDER_NAMES.get(r.lower(), r)
        if full not in PROVIDER_NAMES.values():
            raise OptionError("providers", f"providers: unknown execution provider {r!r}; "
                             f"known: {sorted(PROVIDER_NAMES)}")
        if full not in available or full == "CPUExecutionProvider":
            continue
        if full == "TensorrtExecutionProvider":
            # INT8 only ever runs the calibrated Q/DQ model (explicit quantization): turning
            # trt_int8_enable on for the float model would quantize with no calibration table.
            chosen.append((full, {"trt_fp16_enable": precision in ("fp16", "int8"),
                                  "trt_int8_enable": precision == "int8"}))
        else:
            chosen.append(full)
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: str | Path, precision: str = "fp32", threads: int = 2,
                 providers: Sequence[str] = ("cpu",), spin_wait: bool = False) -> None:
        import onnxruntime as ort

        if int(threads) < 1:
            raise OptionError("threads", f"threads must be >= 1, got {threads}")
        self.info = read_model_info(model)
        if isinstance(providers, str):
            providers = [p for p in providers.split(",") if p]
        chosen = resolve_providers(providers, precision, ort.get_available_providers())
        trt_ep = any("Tensorrt" in str(c) for c in chosen)
        source: str | bytes = str(self.info.path)
        if precision == "int8":  # every provider: the Q/DQ model, never the float one
            source = str(find_qdq(self.info.path))
        elif precision == "fp16" and not trt_ep:
            if "CUDAExecutionProvider" not in chosen:
                raise OptionError("precision", "precision fp16 with onnxruntime needs the CUDA "
                                  "or TensorRT provider; this onnxruntime has "
                                  f"{ort.get_available_providers()}")
            source = fp16_model(self.info.path).SerializeToString()
        self.precision = precision
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads wait for work by burning a core; at camera rate they mostly wait,
        # which takes the CPU a robot's other nodes need (see bench/bench_spin.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if spin_wait else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning",
                                      "1" if spin_wait else "0")
        self.session = ort.InferenceSession(source, opts, providers=chosen)
        self.providers = tuple(self.session.get_providers())
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = LABELS_NAME

    def infer(self, image: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: image[None]})[0][0]

    def infer_with_confidence(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if CONFIDENCE_NAME not in self.info.outputs:
            raise ValueError(f"{self.info.name} has no {CONFIDENCE_NAME!r} output")
        ids, conf = self.session.run([self.output_name, CONFIDENCE_NAME],
                                     {self.input_name: image[None]})
        return ids[0], conf[0]

    def close(self) -> None:
        self.session = None
