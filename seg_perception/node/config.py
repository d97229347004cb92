"""Node configuration: one validated record, built from parameters before anything starts.

Validation lives here (no ROS) so a bad value fails at start with the parameter's name, and the
rules are unit-tested. Types, choices and limits come from the parameter table (``params``);
what is left here are the rules that tie values together or to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from seg_perception.core.classes import ClassSet
from seg_perception.core.errors import ConfigError
from seg_perception.core.geometry import GridSpec, check_pose
from seg_perception.node.params import BY_NAME, OUTPUTS, PARAMETERS, Value


@dataclass(frozen=True)
class NodeConfig:
    model: Path
    backend: str
    precision: str
    input_size: tuple[int, int] | None
    threads: int
    engine_dir: str
    force_rebuild: bool
    dla_core: int
    image_topic: str
    input_transport: str
    qos_reliability: str
    qos_depth: int
    outputs: frozenset[str]
    drivable_ids: tuple[int, ...]
    obstacle_ids: tuple[int, ...]
    overlay_alpha: float
    diagnostics_period: float
    max_frame_age: float
    warn_latency_ms: float
    max_input_pixels: int
    spin_wait: bool
    camera_info_topic: str  # resolved: the camera_info sibling of image_topic
    output_resolution: str
    publish_mask_compressed: bool
    publish_grid: bool
    image_rectified: bool
    grid_frame: str
    camera_pose: tuple[float, ...]
    grid_resolution: float
    grid_x_range: tuple[float, float]
    grid_y_range: tuple[float, float]


def class_ids(name: str, names: list[str], classes: ClassSet) -> tuple[int, ...]:
    wanted = [n for n in names if n]
    unknown = [n for n in wanted if n not in classes.names]
    if unknown:
        raise ConfigError(name, f"unknown class {unknown[0]!r}; the model's classes are "
                          f"{', '.join(classes.names)}")
    return tuple(classes.names.index(n) for n in wanted)


def checked(p: dict[str, object], classes: ClassSet) -> dict[str, Value]:
    """Every parameter of the table, given or default, as its type and within its limits."""
    unknown = sorted(set(p) - set(BY_NAME))
    assert not unknown, f"not in the parameter table: {unknown}"
    v: dict[str, Value] = {}
    for prm in PARAMETERS:
        raw = p.get(prm.name, prm.default)
        if raw is None:  # the class groups default to the model's own
            raw = list(classes.drivable if prm.name == "drivable_classes" else classes.obstacles)
        v[prm.name] = prm.check(raw)
    return v


def validate(p: dict[str, object], classes: ClassSet) -> NodeConfig:
    """``p`` maps parameter names to values (missing ones take the table's default);
    ``classes`` comes from the model's metadata."""
    v = checked(p, classes)
    size = _ints(v, "input_size")
    if size in ([], [0, 0]):
        input_size = None
    elif len(size) != 2 or min(size) < 16:
        raise ConfigError("input_size", f"must be [height, width] within 16..4096 or [0, 0] "
                          f"for the model's own size; got {size}")
    else:
        input_size = (size[0], size[1])
    topic = str(v["image_topic"])
    if not topic or " " in topic:
        raise ConfigError("image_topic", f"not a valid topic name: {topic!r}")
    outputs = frozenset(o for o in OUTPUTS if v[f"publish_{o}"])
    info_topic = str(v["camera_info_topic"]) or camera_info_sibling(topic)
    if " " in info_topic:
        raise ConfigError("camera_info_topic", f"not a valid topic name: {info_topic!r}")
    pose = tuple(_floats(v, "camera_pose"))
    try:
        check_pose(pose)
    except ValueError as exc:
        raise ConfigError("camera_pose", f"{exc} (m, rad, the camera body in grid_frame)") \
            from exc
    grid_frame = str(v["grid_frame"])
    if not grid_frame:
        raise ConfigError("grid_frame", "must name a frame, e.g. base_link")
    x_range = _range("grid_x_range", _floats(v, "grid_x_range"))
    y_range = _range("grid_y_range", _floats(v, "grid_y_range"))
    try:
        grid = GridSpec(_float(v, "grid_resolution"), x_range, y_range)
    except ValueError as exc:  # the ranges are checked above: resolution or grid size
        raise ConfigError("grid_resolution", str(exc)) from exc
    return NodeConfig(
        model=Path(str(v["model"])),
        backend=str(v["backend"]),
        precision=str(v["precision"]),
        input_size=input_size,
        threads=_int(v, "threads"),
        engine_dir=str(v["engine_dir"]),
        force_rebuild=bool(v["force_rebuild"]),
        dla_core=_int(v, "dla_core"),
        image_topic=topic,
        input_transport=str(v["input_transport"]),
        qos_reliability=str(v["qos_reliability"]),
        qos_depth=_int(v, "qos_depth"),
        outputs=outputs,
        drivable_ids=class_ids("drivable_classes", _strs(v, "drivable_classes"), classes),
        obstacle_ids=class_ids("obstacle_classes", _strs(v, "obstacle_classes"), classes),
        overlay_alpha=_float(v, "overlay_alpha"),
        diagnostics_period=_float(v, "diagnostics_period"),
        max_frame_age=_float(v, "max_frame_age"),
        warn_latency_ms=_float(v, "warn_latency_ms"),
        max_input_pixels=_int(v, "max_input_pixels"),
        spin_wait=bool(v["spin_wait"]),
        camera_info_topic=info_topic,
        output_resolution=str(v["output_resolution"]),
        publish_mask_compressed=bool(v["publish_mask_compressed"]),
        publish_grid=bool(v["publish_grid"]),
        image_rectified=bool(v["image_rectified"]),
        grid_frame=grid_frame,
        camera_pose=pose,
        grid_resolution=grid.resolution,
        grid_x_range=grid.x_range,
        grid_y_range=grid.y_range,
    )


def camera_info_sibling(image_topic: str) -> str:
    """image_transport's convention: /camera/image_raw -> /camera/camera_info."""
    return image_topic.rsplit("/", 1)[0] + "/camera_info" if "/" in image_topic \
        else "camera_info"


def _range(name: str, v: list[float]) -> tuple[float, float]:
    if len(v) != 2 or not v[1] > v[0]:
        raise ConfigError(name, f"must be [min, max] in metres with max > min; got {v}")
    return v[0], v[1]


# Typed reads of checked values: ``Param.check`` made them so; these only tell the type checker.
def _int(v: dict[str, Value], name: str) -> int:
    x = v[name]
    assert isinstance(x, int)
    return x


def _float(v: dict[str, Value], name: str) -> float:
    x = v[name]
    assert isinstance(x, float)
    return x


def _ints(v: dict[str, Value], name: str) -> list[int]:
    x = v[name]
    assert isinstance(x, list) and all(isinstance(i, int) for i in x)
    return cast("list[int]", x)


def _floats(v: dict[str, Value], name: str) -> list[float]:
    x = v[name]
    assert isinstance(x, list) and all(isinstance(i, float) for i in x)
    return cast("list[float]", x)


def _strs(v: dict[str, Value], name: str) -> list[str]:
    x = v[name]
    assert isinstance(x, list) and all(isinstance(i, str) for i in x)
    return cast("list[str]", x)
