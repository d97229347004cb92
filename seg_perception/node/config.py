"""Node configuration: one validated record, built from parameters before anything starts.

Validation lives here (no ROS) so a bad value fails at start with the parameter's name, and the
rules are unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seg_perception.core.classes import ClassSet
from seg_perception.core.geometry import GridSpec
from seg_perception.inference.backend import BACKENDS, PRECISIONS

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
OUTPUTS = ("mask", "color", "overlay", "drivable", "obstacles", "confidence")
RESOLUTIONS = ("input", "model")


class ConfigError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"parameter '{param}': {message}")
        self.param = param


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
    max_input_pixels: int = 4096 * 4096
    spin_wait: bool = False
    camera_info_topic: str = ""  # resolved: the camera_info sibling of image_topic
    output_resolution: str = "input"
    publish_mask_compressed: bool = False
    publish_grid: bool = False
    grid_frame: str = "base_link"
    camera_pose: tuple[float, ...] = (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)
    grid_resolution: float = 0.1
    grid_x_range: tuple[float, float] = (0.0, 30.0)
    grid_y_range: tuple[float, float] = (-10.0, 10.0)


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(name, f"must be one of {', '.join(options)}; got {value!r}")
    return value


def class_ids(name: str, names: list[str], classes: ClassSet) -> tuple[int, ...]:
    wanted = [n for n in names if n]
    unknown = [n for n in wanted if n not in classes.names]
    if unknown:
        raise ConfigError(name, f"unknown class {unknown[0]!r}; the model's classes are "
                          f"{', '.join(classes.names)}")
    return tuple(classes.names.index(n) for n in wanted)


def validate(p: dict, classes: ClassSet) -> NodeConfig:
    """``p`` maps parameter names to values; ``classes`` comes from the model's metadata."""
    size = [int(v) for v in p["input_size"]]
    if size in ([], [0, 0]):
        input_size = None
    elif len(size) != 2 or min(size) < 16 or max(size) > 4096:
        raise ConfigError("input_size", f"must be [height, width] within 16..4096 or [0, 0] "
                          f"for the model's own size; got {size}")
    else:
        input_size = (size[0], size[1])
    if int(p["threads"]) < 1:
        raise ConfigError("threads", f"must be at least 1; got {p['threads']}")
    if int(p["qos_depth"]) < 1:
        raise ConfigError("qos_depth", f"must be at least 1; got {p['qos_depth']}")
    alpha = float(p["overlay_alpha"])
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError("overlay_alpha", f"must be within 0..1; got {alpha}")
    if float(p["diagnostics_period"]) <= 0:
        raise ConfigError("diagnostics_period", "must be positive")
    if float(p["max_frame_age"]) <= 0:
        raise ConfigError("max_frame_age", "must be positive (seconds)")
    topic = str(p["image_topic"])
    if not topic or " " in topic:
        raise ConfigError("image_topic", f"not a valid topic name: {topic!r}")
    outputs = frozenset(o for o in OUTPUTS if p.get(f"publish_{o}", o != "confidence"
                                                    and o != "overlay"))
    info_topic = str(p.get("camera_info_topic", "")) or camera_info_sibling(topic)
    if " " in info_topic:
        raise ConfigError("camera_info_topic", f"not a valid topic name: {info_topic!r}")
    pose = tuple(float(v) for v in p.get("camera_pose", (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)))
    if len(pose) != 6:
        raise ConfigError("camera_pose", f"must be [x, y, z, roll, pitch, yaw] (m, rad) of the "
                          f"camera in grid_frame; got {list(pose)}")
    grid_frame = str(p.get("grid_frame", "base_link"))
    if not grid_frame:
        raise ConfigError("grid_frame", "must name a frame, e.g. base_link")
    try:
        grid = GridSpec(float(p.get("grid_resolution", 0.1)),
                        _range("grid_x_range", p.get("grid_x_range", (0.0, 30.0))),
                        _range("grid_y_range", p.get("grid_y_range", (-10.0, 10.0))))
    except ConfigError:
        raise
    except ValueError as exc:  # the ranges are checked above: resolution or grid size
        raise ConfigError("grid_resolution", str(exc)) from exc
    max_pixels = int(p.get("max_input_pixels", 4096 * 4096))
    if max_pixels < 16 * 16:
        raise ConfigError("max_input_pixels", f"must be at least 256 (16x16); got {max_pixels}")
    return NodeConfig(
        model=Path(p["model"]),
        backend=_choice("backend", p["backend"], BACKENDS),
        precision=_choice("precision", p["precision"], PRECISIONS),
        input_size=input_size,
        threads=int(p["threads"]),
        engine_dir=str(p["engine_dir"]),
        force_rebuild=bool(p["force_rebuild"]),
        dla_core=int(p["dla_core"]),
        image_topic=topic,
        input_transport=_choice("input_transport", p["input_transport"], TRANSPORTS),
        qos_reliability=_choice("qos_reliability", p["qos_reliability"], RELIABILITIES),
        qos_depth=int(p["qos_depth"]),
        outputs=outputs,
        drivable_ids=class_ids("drivable_classes", list(p["drivable_classes"]), classes),
        obstacle_ids=class_ids("obstacle_classes", list(p["obstacle_classes"]), classes),
        overlay_alpha=alpha,
        diagnostics_period=float(p["diagnostics_period"]),
        max_frame_age=float(p["max_frame_age"]),
        warn_latency_ms=float(p["warn_latency_ms"]),
        max_input_pixels=max_pixels,
        spin_wait=bool(p.get("spin_wait", False)),
        camera_info_topic=info_topic,
        output_resolution=_choice("output_resolution", p.get("output_resolution", "input"),
                                  RESOLUTIONS),
        publish_mask_compressed=bool(p.get("publish_mask_compressed", False)),
        publish_grid=bool(p.get("publish_grid", False)),
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


def _range(name: str, value: object) -> tuple[float, float]:
    v = [float(x) for x in value]  # type: ignore[attr-defined]
    if len(v) != 2 or not v[1] > v[0]:
        raise ConfigError(name, f"must be [min, max] in metres with max > min; got {v}")
    return v[0], v[1]
