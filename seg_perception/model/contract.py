"""The deployed model's contract: tensor names and the metadata that travels inside the ONNX.

Export writes them, every backend and tool reads them; nothing else spells them out. The ONNX
metadata helpers take an ``onnx.ModelProto`` (offline tooling); the node reads the same entries
through onnxruntime (``inference.modelinfo``), which needs no ``onnx`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INPUT_NAME = "image"  # uint8, N x H x W x 3 RGB
LABELS_NAME = "labels"  # uint8 class ids, N x H x W
CONFIDENCE_NAME = "confidence"  # uint8 winning-class probability x 255, N x H x W (optional)
LOGITS_NAME = "logits"  # optional float logits, N x C x H x W
"""The deployed model's I/O contract: export writes these names, every backend reads them."""


def get_metadata(model: Any) -> dict[str, str]:  # noqa: ANN401 - onnx.ModelProto
    return {e.key: e.value for e in model.metadata_props}


def set_metadata(model: Any, meta: dict[str, str]) -> None:  # noqa: ANN401 - onnx.ModelProto
    """Replaces every metadata entry: a derived model carries exactly what it is given."""
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ONNX file, without loading external weights."""
    import onnx  # offline tooling only; the node path reads metadata through onnxruntime

    return get_metadata(onnx.load(str(path), load_external_data=False))
