"""What a backend needs to know about a model, read from the ONNX metadata (no torch)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .classes import ClassSet

DEFAULT_MODEL_NAME = "seglite_camvid.onnx"


def package_share() -> Path:
    """Where launch/, config/ and engines/ live: the source tree, or share/ after colcon."""
    src = Path(__file__).resolve().parent.parent
    if (src / "engines").is_dir():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("seg_perception"))
    except Exception:  # noqa: BLE001 - no ament index: fall back to the source layout
        return src


def default_model_path() -> Path:
    return package_share() / "engines" / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    classes: ClassSet
    input_size: tuple[int, int]  # (height, width) the model was trained at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sha256: str
    arch: str
    outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_model_info(path: str | Path) -> ModelInfo:
    """Reads a seg_perception ONNX; raises FileNotFoundError or ValueError naming the file."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model not found: {p}")
    try:
        m = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise ValueError(f"{p} is not a readable ONNX model: {exc}") from exc
    meta = {e.key: e.value for e in m.metadata_props}
    if "classes" not in meta or "input_size" not in meta:
        raise ValueError(f"{p} has no seg_perception metadata (classes, input_size): "
                         "export it with `seg-perception export`")
    try:
        h, w = (int(v) for v in meta["input_size"].split("x"))
        classes = ClassSet.from_dict(json.loads(meta["classes"]))
        mean = tuple(json.loads(meta.get("mean", "[0, 0, 0]")))
        std = tuple(json.loads(meta.get("std", "[1, 1, 1]")))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{p}: malformed seg_perception metadata: {exc}") from exc
    return ModelInfo(path=p, classes=classes, input_size=(h, w), mean=mean,  # type: ignore[arg-type]
                     std=std, sha256=file_sha256(p), arch=meta.get("arch", "unknown"),
                     outputs=tuple(o.name for o in m.graph.output))
