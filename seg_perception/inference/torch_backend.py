"""Eager PyTorch backend: development, and GPUs without TensorRT (FP16 on CUDA).

It runs the checkpoint the ONNX was exported from, through the same wrapper as the export, so
ids match the ONNX Runtime path. Given an ONNX it uses the sibling ``.pt`` and refuses one whose
sha256 differs from the ``checkpoint_sha256`` recorded in the ONNX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_perception.core.errors import OptionError
from seg_perception.core.fileio import file_sha256
from seg_perception.inference.modelinfo import ModelInfo, read_model_info
from seg_perception.model.contract import CONFIDENCE_NAME, LABELS_NAME, read_metadata

DEVICES = ("auto", "cpu", "cuda")


def checkpoint_for(model: Path, checkpoint: str | Path | None = None) -> tuple[Path, ModelInfo]:
    """The checkpoint to run and the ModelInfo the node sees; checks that they belong together."""
    if model.suffix == ".pt":
        if not model.is_file():
            raise FileNotFoundError(f"model not found: {model}")
        return model, _info_from_checkpoint(model)
    info = read_model_info(model)
    ck = Path(checkpoint) if checkpoint else model.with_suffix(".pt")
    if not ck.is_file():
        raise FileNotFoundError(f"the torch backend needs the checkpoint {ck} that {model.name} "
                                "was exported from")
    meta = read_metadata(model)
    want = meta.get("checkpoint_sha256")
    got = file_sha256(ck)
    if want and want != got:
        raise ValueError(f"checkpoint {ck} (sha256 {got[:12]}) is not the one {model.name} was "
                         f"exported from ({want[:12]}); export again or pass the right checkpoint")
    return ck, info


def _info_from_checkpoint(path: Path) -> ModelInfo:
    from seg_perception.model.checkpoint import classes_of, load_checkpoint  # torch

    meta = load_checkpoint(path)["meta"]
    h, w = meta["input_size"]
    return ModelInfo(path=path, classes=classes_of(meta), input_size=(int(h), int(w)),
                     sha256=file_sha256(path), outputs=(LABELS_NAME, CONFIDENCE_NAME))


class TorchBackend:
    name = "torch"

    def __init__(self, model: str | Path, precision: str = "fp32", threads: int = 2,
                 device: str = "auto", checkpoint: str | Path | None = None) -> None:
        import torch

        # torch: imported when this backend is chosen, never by the node's ONNX Runtime path
        from seg_perception.model.checkpoint import load_model
        from seg_perception.model.deploy import ExportWrapper  # torch, as above

        if device not in DEVICES:
            raise OptionError("device", f"device must be one of {DEVICES}, got {device!r}")
        if int(threads) < 1:
            raise OptionError("threads", f"threads must be >= 1, got {threads}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise OptionError("device", "device cuda requested but torch sees no CUDA GPU")
        if precision == "int8":
            raise OptionError("precision", "precision int8 is not supported by the torch backend "
                             "(use tensorrt, or onnxruntime with the Q/DQ model)")
        if precision == "fp16" and device != "cuda":
            raise OptionError("precision", "precision fp16 with the torch backend needs a CUDA GPU")
        ck, self.info = checkpoint_for(Path(model), checkpoint)
        self.checkpoint = ck
        self.precision = precision
        self.device = torch.device(device)
        if device == "cpu":
            torch.set_num_threads(int(threads))
        net, _ = load_model(ck)
        # channels_last: the NHWC frame is already laid out so, and on the CPU it is ~6x faster
        # than NCHW for this depthwise-heavy net (no layout conversion around every conv).
        # Module.to takes memory_format at run time (documented); torch's stubs lack it.
        self.wrapper = ExportWrapper(net, with_logits=False).eval().to(  # type: ignore[call-overload]
            self.device, memory_format=torch.channels_last)
        if device == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels
        self._torch = torch

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Class ids only: the confidence's softmax is not computed."""
        return self._run(image, with_confidence=False)[0]

    def infer_with_confidence(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, confidence): the same graph as the exported model's two outputs."""
        ids, conf = self._run(image, with_confidence=True)
        assert conf is not None
        return ids, conf

    def _run(self, image: np.ndarray,
             with_confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(image)[None])
        with torch.inference_mode():
            if self.device.type == "cuda":
                x = x.to(self.device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.float16,
                                enabled=self.device.type == "cuda" and self.precision == "fp16"):
                if not with_confidence:
                    return self.wrapper.labels(x)[0].cpu().numpy(), None
                labels, conf = self.wrapper(x)[:2]
            return labels[0].cpu().numpy(), conf[0].cpu().numpy()

    def close(self) -> None:
        self.wrapper = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
