"""Every node parameter, once: name, type, default, limits and meaning.

The node declares its ROS parameters from this table, ``config.validate`` checks values against
it, and the tests hold ``config/segmentation.yaml`` and the README's parameter table to it
(``python -m seg_perception.node.params`` prints that table). No ROS here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from seg_perception.core.codec import DEFAULT_MAX_PIXELS
from seg_perception.core.errors import ConfigError
from seg_perception.inference.backend import BACKENDS, PRECISIONS

KINDS = ("bool", "int", "float", "str", "int[]", "float[]", "str[]")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
OUTPUTS = ("mask", "color", "overlay", "drivable", "obstacles", "confidence")
RESOLUTIONS = ("input", "model")
FROM_MODEL = None
"""The default of the class groups: the model's own (its metadata names them)."""

Value = bool | int | float | str | list[int] | list[float] | list[str]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Value | None
    doc: str
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    dynamic: bool = False  # may change while the node runs (everything else is read-only)

    def check(self, value: object) -> Value:
        """``value`` as this parameter's type, or ConfigError saying what is allowed."""
        want = {"bool": "true or false", "int": "an integer", "float": "a number",
                "str": "a string", "int[]": "a list of integers", "float[]": "a list of numbers",
                "str[]": "a list of strings"}[self.kind]
        try:
            v = _coerce(self.kind, value)
        except (TypeError, ValueError):
            raise ConfigError(self.name, f"must be {want}; got {value!r}") from None
        if self.choices and v not in self.choices:
            raise ConfigError(self.name, f"must be one of {', '.join(self.choices)}; got {v!r}")
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and (
                    (self.min is not None and x < self.min)
                    or (self.max is not None and x > self.max)):
                raise ConfigError(self.name, f"must be within {_fmt(self.min)}..{_fmt(self.max)}"
                                  f"; got {x}")
        return v


def _coerce(kind: str, value: object) -> Value:
    if kind.endswith("[]"):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(kind)
        return cast("Value", [_coerce(kind[:-2], x) for x in value])  # scalars of one kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(kind)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(kind)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise TypeError(kind)
        return float(value)
    if not isinstance(value, str):
        raise TypeError(kind)
    return value


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def _p(name: str, kind: str, default: Value | None, doc: str, **kw: object) -> Param:
    # why the ignore below: the table's literal kinds; Param checks them
    return Param(name, kind, default, doc, **kw)  # type: ignore[arg-type]


PARAMETERS: tuple[Param, ...] = (
    _p("model", "str", "", "ONNX model (engines are built from it); empty: the bundled "
       "`engines/seglite_camvid.onnx`"),
    _p("backend", "str", "auto", "`auto` (TensorRT when it imports and a GPU is present, else "
       "ONNX Runtime), `tensorrt`, `onnxruntime`, `torch`", choices=BACKENDS),
    _p("precision", "str", "fp32", "`fp32`, `fp16` (needs a GPU), `int8` (the calibrated Q/DQ "
       "model on TensorRT or ONNX Runtime)", choices=PRECISIONS),
    _p("input_size", "int[]", [0, 0], "`[height, width]` the model runs at, each 16..4096; "
       "`[0, 0]`: the model's own (360x480)", min=0, max=4096),
    _p("threads", "int", 2, "CPU threads for ONNX Runtime / PyTorch; with `cameras:=a,b,...` the "
       "launch file gives each node its share of the cores (`threads:=N` overrides)",
       min=1, max=256),
    _p("spin_wait", "bool", False, "ONNX Runtime threads busy-wait for work between frames; off "
       "keeps the CPU for the robot's other nodes (`bench/bench_spin.py`)"),
    _p("engine_dir", "str", "", "TensorRT engine cache directory; empty: next to the model"),
    _p("force_rebuild", "bool", False, "rebuild the TensorRT engine even if a cached one "
       "matches"),
    _p("dla_core", "int", -1, "Jetson DLA core for TensorRT (precision fp16); -1: GPU only",
       min=-1, max=7),
    _p("image_topic", "str", "/camera/image_raw", "input image topic (relative names follow the "
       "namespace)"),
    _p("input_transport", "str", "raw", "`raw`, or `compressed` (reads "
       "`<image_topic>/compressed`)", choices=TRANSPORTS),
    _p("qos_reliability", "str", "best_effort", "input QoS reliability: `best_effort` (sensor "
       "data) or `reliable`", choices=RELIABILITIES),
    _p("qos_depth", "int", 1, "input QoS history depth", min=1, max=1000),
    _p("publish_mask", "bool", True, "publish `segmentation/mask` (class ids)"),
    _p("publish_color", "bool", True, "publish `segmentation/color` (class colours)"),
    _p("publish_overlay", "bool", False, "publish `segmentation/overlay` (colours over the "
       "image)"),
    _p("publish_drivable", "bool", True, "publish `segmentation/drivable`"),
    _p("publish_obstacles", "bool", True, "publish `segmentation/obstacles`"),
    _p("publish_confidence", "bool", False, "publish `segmentation/confidence` (255 x the "
       "winning class's probability)"),
    _p("drivable_classes", "str[]", FROM_MODEL, "class names published as drivable (255); "
       "default: the model's drivable group"),
    _p("obstacle_classes", "str[]", FROM_MODEL, "class names published as obstacles (255); "
       "default: the model's obstacle group"),
    _p("overlay_alpha", "float", 0.5, "colour weight of the overlay (changeable at run time)",
       min=0.0, max=1.0, dynamic=True),
    _p("diagnostics_period", "float", 1.0, "seconds between `/diagnostics` messages",
       min=0.01, max=3600.0),
    _p("max_frame_age", "float", 0.5, "seconds a frame may wait for the worker before it is "
       "dropped as stale", min=0.001, max=3600.0),
    _p("warn_latency_ms", "float", 100.0, "p95 receipt-to-publish latency (ms) above which "
       "diagnostics turn WARN", min=0.0),
    _p("max_input_pixels", "int", DEFAULT_MAX_PIXELS, "largest frame (width x height) decoded; "
       "a larger raw frame or a JPEG/PNG whose header declares more is refused unread",
       min=256, max=16384 * 16384),
    _p("camera_info_topic", "str", "", "camera calibration matched to the frames (the latest "
       "one); empty: the `camera_info` sibling of `image_topic` as remapped"),
    _p("output_resolution", "str", "input", "`input`: outputs at the camera's size; `model`: at "
       "the network's input size, with `segmentation/camera_info` saying so",
       choices=RESOLUTIONS),
    _p("publish_mask_compressed", "bool", False, "publish `segmentation/mask/compressed` "
       "(lossless PNG of the mask)"),
    _p("publish_grid", "bool", False, "publish `segmentation/grid` (nav_msgs/OccupancyGrid on a "
       "flat ground); needs camera_info"),
    _p("image_rectified", "bool", False, "frames are already rectified (an `image_rect` "
       "topic): the grid uses camera_info's P and no distortion; false: K and D of the raw image"),
    _p("grid_frame", "str", "base_link", "frame of the grid and of `camera_pose` (REP-103: x "
       "forward, y left, z up, ground at z = 0)"),
    _p("camera_pose", "float[]", [0.0, 0.0, 1.5, 0.0, 0.0, 0.0], "`[x, y, z, roll, pitch, yaw]` "
       "of the camera body in `grid_frame` (m, rad; positive pitch looks down)"),
    _p("grid_resolution", "float", 0.1, "grid cell size (m)", min=0.001, max=100.0),
    _p("grid_x_range", "float[]", [0.0, 30.0], "`[min, max]` x of the grid (m); the grid's "
       "origin is (x_min, y_min, 0)"),
    _p("grid_y_range", "float[]", [-10.0, 10.0], "`[min, max]` y of the grid (m); rows run along "
       "y, columns along x"),
)
BY_NAME = {p.name: p for p in PARAMETERS}
assert len(BY_NAME) == len(PARAMETERS), "a parameter is listed twice"


def cli_overrides(argv: Sequence[str], node_names: Sequence[str]) -> dict[str, str]:
    """The ``-p name:=value`` (``--param``) texts of the ROS arguments in ``argv``, last one
    winning, for the node whose fully qualified name is in ``node_names`` (``node:name:=value``
    targets a node: rclpy applies it where '/' + node is that name).

    rcl merges them into the params file's values, and where the two disagree in type the
    file's value is what rclpy reads: a wrong-typed override would be dropped without a word.
    """
    out: dict[str, str] = {}
    ros = False
    it = iter(argv)
    for arg in it:
        if arg == "--ros-args":
            ros = True
        elif arg == "--":
            ros = False
        elif ros and arg in ("-p", "--param"):
            kv = next(it, "")
            lhs, sep, value = kv.partition(":=")
            if not sep:
                continue
            target, colon, name = lhs.rpartition(":")
            if colon and "/" + target.lstrip("/") not in node_names:  # as rclpy matches it
                continue
            out[name] = value
    return out


_RCL_BOOLS = {**dict.fromkeys(("true", "yes", "on", "y"), True),
              **dict.fromkeys(("false", "no", "off", "n"), False)}


def _readings(text: str) -> list[object]:
    """What rcl may have read ``text`` as: YAML, and its own number and bool spellings."""
    import yaml

    out: list[object] = []
    try:
        out.append(yaml.safe_load(text))
    except yaml.YAMLError:
        pass
    for conv in (int, float):
        try:
            out.append(conv(text))
        except ValueError:
            pass
    if text.lower() in _RCL_BOOLS:
        out.append(_RCL_BOOLS[text.lower()])
    return [*out, text]


def override_taken(prm: Param, text: str, effective: object) -> bool:
    """Whether a command-line ``text`` for ``prm`` is what ROS 2 gave the node (``effective``);
    ConfigError when no reading of it is of the parameter's type."""
    fits: list[object] = []
    for given in _readings(text):
        try:
            fits.append(prm.check(given))
        except ConfigError:
            continue
    if not fits:
        prm.check(_readings(text)[0])  # "must be an integer; got 'abc'"
    return any(type(v) is type(effective) and v == effective for v in fits)


def _md_value(v: Value | None) -> str:
    if v is FROM_MODEL:
        return "the model's"
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, str):
        return f"`{v}`" if v else '`""`'
    if isinstance(v, list):
        return "`[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]`"
    return f"`{v:g}`" if isinstance(v, float) else f"`{v}`"


def markdown_table() -> str:
    """The README's parameter table."""
    rows = ["| parameter | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{p.name}` | {_md_value(p.default)} | {p.doc} |" for p in PARAMETERS]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
