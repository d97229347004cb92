"""The ROS 2 shell: parameters, topics, one inference worker, diagnostics.

Callbacks only drop the newest message into a one-slot mailbox; the worker thread decodes,
infers and publishes. A slow backend therefore skips frames (counted) instead of queueing them.
Run: ``python -m seg_perception.node --ros-args --params-file config/segmentation.yaml``.
"""

from __future__ import annotations

import array
import contextlib
import functools
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    InvalidTopicNameException,
    ParameterException,
    ParameterUninitializedException,
)
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seg_perception.core.codec import decode_message
from seg_perception.core.errors import ConfigError, ModelError, OptionError
from seg_perception.core.geometry import GridSpec, GroundGrid, Intrinsics, check_aspect
from seg_perception.core.logs import forwarded
from seg_perception.inference.factory import create_backend
from seg_perception.inference.modelinfo import default_model_path, read_model_info
from seg_perception.inference.segmenter import Segmenter
from seg_perception.model.contract import CONFIDENCE_NAME
from seg_perception.node.config import NodeConfig, camera_info_sibling, validate
from seg_perception.node.diagnostics import health, values
from seg_perception.node.outputs import COLOUR, OutputRenderer
from seg_perception.node.params import (
    BY_NAME,
    FROM_MODEL,
    PARAMETERS,
    Param,
    cli_overrides,
    override_taken,
)
from seg_perception.node.slot import LatestSlot
from seg_perception.node.stats import NodeStats, StampGaps
from seg_perception.node.worker import Outcome, serve_frame

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import (  # type: ignore[no-redef,unused-ignore]  # Humble only
        SubscriptionEventCallbacks,
        UnsupportedEventTypeError,
    )

NODE_NAME = "segmentation_node"


def subscribe_counting_losses(create: Callable[..., Any], events: SubscriptionEventCallbacks,
                              log: Any) -> tuple[Any, bool]:
    """``create(event_callbacks=events)``, or ``create()`` where the RMW has no message-lost
    event (rmw_zenoh before mid-2024, rmw_ecal): rclpy raises for it, and a node must not fail
    to start over a counter. Returns the subscription and whether losses are counted."""
    try:
        return create(event_callbacks=events), True
    except UnsupportedEventTypeError:
        log.warning("this RMW reports no lost messages: /diagnostics says lost is n/a")
        return create(), False
# Lossless whatever the settings; for class-id masks run-length deflate with no row filter is
# 3-4x faster than PNG's defaults and smaller (bench/bench_planner.py).
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
PNG_MAX_SIDE = 1_000_000  # libpng's default user limit on width and height (PNG_USER_WIDTH_MAX)
_T = ParameterType
OUTPUT_QOS_OVERRIDES = QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH,
                                             QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY])
"""What ``qos_overrides.<output>.publisher.*`` may set at start (ROS 2's QoS overrides)."""
GRIDS_KEPT = 4  # ground grids kept per camera_info content (1.7 MB each at 480x360)
GRID_BUILD_EVERY_S = 1.0  # at most one new ground grid per second of the node's clock


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at the callback


_ROS_TYPES = {
    "bool": _T.PARAMETER_BOOL, "int": _T.PARAMETER_INTEGER, "float": _T.PARAMETER_DOUBLE,
    "str": _T.PARAMETER_STRING, "int[]": _T.PARAMETER_INTEGER_ARRAY,
    "float[]": _T.PARAMETER_DOUBLE_ARRAY, "str[]": _T.PARAMETER_STRING_ARRAY,
}


def info_content(ci: CameraInfo) -> tuple[bytes, bytes, bytes, str, int, int,
                                         tuple[int, int, int, int]]:
    """What of a camera_info the outputs depend on, as a key. By bytes, so a NaN equals itself:
    a driver repeating a bad calibration is one bad calibration, checked and counted once."""
    def raw(v: Any) -> bytes:  # noqa: ANN401 - a message's float sequence
        return np.asarray(v, np.float64).tobytes()

    roi = ci.roi
    return (raw(ci.k), raw(ci.p), raw(ci.d), str(ci.distortion_model), int(ci.width),
            int(ci.height), (int(roi.x_offset), int(roi.y_offset), int(roi.width),
                             int(roi.height)))


def descriptor(prm: Param) -> ParameterDescriptor:
    """The ROS descriptor of a table entry: its type, meaning, limits; read-only unless the
    node re-reads it while running."""
    d = ParameterDescriptor(name=prm.name, type=_ROS_TYPES[prm.kind],
                            description=prm.doc.replace("`", ""), read_only=not prm.dynamic)
    if prm.choices:
        d.additional_constraints = f"one of {', '.join(prm.choices)}"
    if prm.min is not None and prm.max is not None and prm.kind == "int":
        d.integer_range = [IntegerRange(from_value=int(prm.min), to_value=int(prm.max), step=1)]
    elif prm.min is not None and prm.max is not None and prm.kind == "float":
        d.floating_point_range = [FloatingPointRange(from_value=prm.min, to_value=prm.max)]
    return d


class SegmentationNode(Node):
    def __init__(self, argv: Sequence[str] | None = None, **kwargs: object) -> None:
        """``argv``: the process's arguments as given to ``rclpy.init`` (default sys.argv),
        read to check that every ``-p`` override took effect."""
        # why the ignore below: rclpy's Node takes typed keywords; these are passed through
        super().__init__(NODE_NAME, **kwargs)  # type: ignore[arg-type]
        cli = kwargs.get("cli_args")
        # Global arguments apply unless the caller said otherwise; explicit overrides win.
        self._argv = [*((sys.argv if argv is None else argv)
                        if kwargs.get("use_global_arguments", True) else []),
                      *(cli if isinstance(cli, (list, tuple)) else [])]
        given = kwargs.get("parameter_overrides")
        self._explicit = {getattr(q, "name", "") for q in given} \
            if isinstance(given, (list, tuple)) else set()
        # The core logs through stdlib logging; while the node lives, its lines are the node's.
        self._logs = contextlib.ExitStack()
        self._logs.enter_context(forwarded(self.get_logger()))
        try:
            self.cfg, self.segmenter = self._configure()
        except BaseException:
            self._logs.close()
            raise
        try:
            self._wire()
        except BaseException:  # e.g. a topic rcl refuses: the backend (a GPU context) goes too
            self.segmenter.backend.close()
            self._logs.close()
            raise

    def _wire(self) -> None:
        """Topics, timers and the worker around the configured segmenter."""
        info = self.segmenter.backend.info
        self._renderer = OutputRenderer(info.classes.palette_array(), self.cfg.drivable_ids,
                                        self.cfg.obstacle_ids)
        self.stats = NodeStats()
        self._gaps = StampGaps()
        self._slot: LatestSlot[Frame] = LatestSlot()

        depth = self.cfg.qos_depth
        in_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth,
            reliability=ReliabilityPolicy.BEST_EFFORT if self.cfg.qos_reliability == "best_effort"
            else ReliabilityPolicy.RELIABLE,
            durability=qos_profile_sensor_data.durability)
        events = SubscriptionEventCallbacks(message_lost=self._on_lost)
        compressed = self.cfg.input_transport == "compressed"
        topic = self.cfg.image_topic.rstrip("/") + "/compressed" if compressed \
            else self.cfg.image_topic
        try:
            self._sub, self._lost_reported = subscribe_counting_losses(
                functools.partial(self.create_subscription,
                                  CompressedImage if compressed else Image, topic,
                                  self._on_image, in_qos), events, self.get_logger())
        except InvalidTopicNameException as exc:
            why = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
            raise ConfigError("image_topic", f"not a valid topic name: {topic!r} ({why})") from exc
        # Reused per output: publish copies the message, and building one costs Python time.
        self._out_msgs = {o: Image(encoding="rgb8" if o in COLOUR else "mono8")
                          for o in self.cfg.outputs}
        # Planner outputs beyond images: camera_info for what is published, PNG masks, a grid.
        self._camera_info: CameraInfo | None = None
        self._info_out: CameraInfo | None = None  # the scaled camera_info, reused per frame
        self._info_key: tuple | None = None
        self._bad_info_key: tuple | None = None
        try:
            self._info_sub = self.create_subscription(
                CameraInfo, self.cfg.camera_info_topic, self._on_camera_info,
                qos_profile_sensor_data)
        except InvalidTopicNameException as exc:
            raise ConfigError("camera_info_topic", f"not a valid topic name: "
                              f"{self.cfg.camera_info_topic!r}") from exc
        self._grid: GroundGrid | None = None
        self._grid_key: tuple | None = None
        self._grids: OrderedDict[tuple, tuple[GroundGrid | None, str]] = OrderedDict()
        self._grid_built_at = -math.inf
        self._grid_clock = time.monotonic  # tests step their own
        self._grid_msg: OccupancyGrid | None = None
        self._grid_note = "off" if not self.cfg.publish_grid else \
            f"waiting for camera_info on {self.cfg.camera_info_topic}"
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.cfg.diagnostics_period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = self._start_worker()
        self.get_logger().info(
            f"segmentation node ready: backend={self.segmenter.backend.name} "
            f"precision={self.segmenter.backend.precision} model={info.path} "
            f"input={self.segmenter.input_size[1]}x{self.segmenter.input_size[0]} "
            f"topic={self.resolve_topic_name(topic)} ({self.cfg.input_transport}, "
            f"{self.cfg.qos_reliability}) outputs={sorted(self.cfg.outputs)}")

    # -- configuration ---------------------------------------------------------------------
    def _declare(self, prm: Param, default: object) -> None:
        """declare_parameter from the table's entry, with a value of the wrong type or out of
        range as a ConfigError naming the parameter (rclpy raises its own exceptions, which
        would be a traceback)."""
        try:
            self.declare_parameter(prm.name, default, descriptor(prm))
        except (InvalidParameterTypeException, InvalidParameterValueException,
                ParameterException, TypeError, ValueError) as exc:
            err: Exception = exc
            given = self._parameter_overrides.get(prm.name)  # what the params file or -p gave
            value = prm.check(given.value if given is not None else default)  # what's allowed
            if prm.kind.startswith("float") and given is not None and value == given.value:
                # `max_frame_age:=1` is a number of seconds too; ROS types it INTEGER
                try:
                    self.declare_parameter(prm.name, value, descriptor(prm),
                                           ignore_override=True)
                    return
                except (InvalidParameterValueException, ParameterException) as again:
                    err = again
            why = " ".join(str(err).split())[:200]
            raise ConfigError(prm.name, f"rejected by ROS: {why}") from err

    def _check_overrides(self) -> None:
        """A ``-p`` override rcl dropped (its type differs from the params file's) is a
        ConfigError naming the parameter, as it would be without a params file."""
        for name, text in cli_overrides(self._argv, (self.get_fully_qualified_name(),)).items():
            prm = BY_NAME.get(name)
            if prm is None or name in self._explicit:
                continue  # unknown: warned about with the others; explicit: those won
            effective = self._value(name)
            if not override_taken(prm, text, effective):
                raise ConfigError(name, f"-p {name}:={text} did not take effect: ROS 2 kept "
                                  f"{effective!r} (a params file's value of another type); "
                                  "give the value in the parameter's type")

    def _value(self, name: str) -> object:
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException as exc:  # e.g. `[]`: ROS 2 gives it no type
            raise ConfigError(name, "has no value (an empty list has no type in ROS 2); give at "
                              "least one entry, or switch the output off") from exc

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Run-time values pass the check start-up applies (rclpy's own range test lets
        values within 1e-6 beyond a bound through)."""
        for p in params:
            prm = BY_NAME.get(p.name)
            if prm is not None and prm.dynamic:
                try:
                    prm.check(p.value)
                except ConfigError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _create_outputs(self, cfg: NodeConfig) -> None:
        """The output publishers, before the backend: a QoS override ROS refuses fails at
        start at once, not after a TensorRT build of minutes."""
        # Reliable, volatile, depth 1 reaches both reliable and best-effort readers. The grid
        # too: a late reader must not take an old grid (the last one before the camera stopped
        # or the calibration turned bad) as the road now.
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {o: self._output(Image, f"segmentation/{o}", out_qos)
                      for o in cfg.outputs}
        self._info_pub = self._output(CameraInfo, "segmentation/camera_info", out_qos)
        self._png_pub = self._output(CompressedImage, "segmentation/mask/compressed",
                                     out_qos) if cfg.publish_mask_compressed else None
        self._grid_pub = self._output(OccupancyGrid, "segmentation/grid", out_qos) \
            if cfg.publish_grid else None
        self._warn_untaken_qos_overrides()

    def _output(self, msg_type: type, topic: str, qos: QoSProfile) -> Any:  # noqa: ANN401
        """An output publisher whose QoS a start-up ``qos_overrides.<topic>.publisher.<policy>``
        parameter may change (rclpy declares them, read-only); a value rclpy refuses is a
        ConfigError naming it."""
        # rclpy writes the overrides into the profile it is given: one copy per publisher.
        own = QoSProfile(history=qos.history, depth=qos.depth, reliability=qos.reliability,
                         durability=qos.durability)
        try:
            return self.create_publisher(msg_type, topic, own,
                                         qos_overriding_options=OUTPUT_QOS_OVERRIDES)
        except (InvalidQosOverridesError, InvalidParameterTypeException, ValueError, KeyError,
                RuntimeError) as exc:  # rclpy: RuntimeError for a policy value it cannot read
            prefix = f"qos_overrides.{self.resolve_topic_name(topic)}.publisher."
            given = sorted(n for n in self._parameter_overrides if n.startswith(prefix))
            named = [n for n in given if f"`{n.removeprefix(prefix)}`" in str(exc)]
            raise ConfigError((named or given or [prefix.rstrip(".")])[0],
                              f"refused by ROS: {exc}") from exc

    def _warn_unknown_parameters(self) -> None:
        """A misspelt parameter would otherwise be ignored without a word."""
        known = set(self._parameters)  # rclpy's declared parameters (Humble..Kilted)
        unknown = sorted(n for n in self._parameter_overrides
                         if n not in known and not n.startswith("qos_overrides."))
        if unknown:
            self.get_logger().warning(f"unknown parameters ignored: {', '.join(unknown)}")

    def _warn_untaken_qos_overrides(self) -> None:
        """After the publishers: the overrides rclpy did not declare were for no output."""
        known = set(self._parameters)
        qos = sorted(n for n in self._parameter_overrides
                     if n.startswith("qos_overrides.") and n not in known)
        if qos:
            self.get_logger().warning(
                f"{', '.join(qos)} ignored: the input QoS comes from qos_reliability and "
                "qos_depth; outputs take qos_overrides.<output topic>.publisher.{history, depth, "
                "reliability, durability}")

    def _configure(self) -> tuple[NodeConfig, Segmenter]:
        for prm in PARAMETERS:
            if prm.default is not FROM_MODEL:
                self._declare(prm, prm.default)
        model = self.get_parameter("model").value or str(default_model_path())
        try:
            info = read_model_info(model)
        except (FileNotFoundError, ModelError) as exc:
            raise ConfigError("model", str(exc)) from exc
        groups = info.classes
        # The class groups default to the model's own (an empty list would have no ROS type).
        self._declare(BY_NAME["drivable_classes"], list(groups.drivable) or [""])
        self._declare(BY_NAME["obstacle_classes"], list(groups.obstacles) or [""])
        self._warn_unknown_parameters()
        self._check_overrides()
        values = {p.name: self._value(p.name) for p in PARAMETERS}
        cfg = validate({**values, "model": model}, groups)
        if "confidence" in cfg.outputs and CONFIDENCE_NAME not in info.outputs:
            raise ConfigError("publish_confidence", f"{info.name} has no {CONFIDENCE_NAME!r} "
                              "output; export it again with `seg-perception export`")
        self._check_topic_names(cfg)  # before the backend: a TensorRT build takes minutes
        self._create_outputs(cfg)
        if not values["camera_info_topic"]:
            # The sibling of the image topic as remapped, as image_transport's camera
            # subscriber takes it: `-r /camera/image_raw:=/front/image_raw` moves both.
            cfg = replace(cfg, camera_info_topic=camera_info_sibling(
                self.resolve_topic_name(cfg.image_topic)))
        size = cfg.input_size or info.input_size
        try:
            backend = create_backend(
                cfg.model, cfg.backend, cfg.precision, cfg.threads, input_size=size,
                engine_dir=cfg.engine_dir or None, force_rebuild=cfg.force_rebuild,
                dla_core=cfg.dla_core, spin_wait=cfg.spin_wait)
        except (FileNotFoundError, ModelError) as exc:
            raise ConfigError("model", str(exc)) from exc
        except OptionError as exc:
            raise ConfigError(exc.option, str(exc)) from exc
        except (ValueError, RuntimeError) as exc:  # the backend could not start with this model
            raise ConfigError("backend", str(exc)) from exc
        except OSError as exc:  # engines are written beside the model unless engine_dir says
            raise ConfigError("engine_dir", f"cannot write TensorRT engines: {exc}; set "
                              "engine_dir to a writable folder") from exc
        return cfg, Segmenter(backend, size)

    def _check_topic_names(self, cfg: NodeConfig) -> None:
        """rcl's own name rules (repeated '/', leading digits, ...), as ConfigErrors."""
        image = cfg.image_topic.rstrip("/") + "/compressed" \
            if cfg.input_transport == "compressed" else cfg.image_topic
        for name, topic in (("image_topic", image), ("camera_info_topic", cfg.camera_info_topic)):
            try:
                self.resolve_topic_name(topic)
            except Exception as exc:  # noqa: BLE001 - rclpy raises its private RCLError
                why = str(exc).splitlines()[0].removeprefix("failed to resolve name: ")
                raise ConfigError(name, f"not a valid topic name: {topic!r} "
                                  f"({why.split(', at ')[0]})") from exc

    # -- callbacks (executor thread): keep the newest frame only -----------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.stats.count("received")
        st = msg.header.stamp
        stamp = st.sec * 1_000_000_000 + st.nanosec
        if stamp == 0 or not msg.header.frame_id:
            self._bad_header(stamp)
        missing = self._gaps.add(stamp)
        if missing:
            self.stats.count("never_seen", missing)
        if self._slot.put(Frame(msg, time.monotonic())):
            self.stats.count("dropped")
        # Hand the GIL to the woken worker now: otherwise it waits for the executor's own Python
        # bookkeeping after this callback (measured 0.3 ms per frame; 0.02 ms with this).
        time.sleep(0)

    def _bad_header(self, stamp: int) -> None:
        """Served as sent (the outputs carry the camera's header), but tf lookups and time
        pairing downstream need a stamp and a frame: said and counted, not refused."""
        self.stats.count("bad_headers")
        what = "no stamp (0)" if stamp == 0 else "an empty frame_id"
        self.get_logger().warning(
            f"image on {self._sub.topic_name} has {what}: outputs carry its header as is; "
            "tf and time synchronisation downstream need the camera's stamp and frame_id",
            throttle_duration_sec=5.0)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg  # one reference swap: the worker reads whichever is newest

    def _on_lost(self, info: object) -> None:
        self.stats.count("lost", int(getattr(info, "total_count_change", 1)))

    # -- worker thread ---------------------------------------------------------------------
    def _start_worker(self) -> threading.Thread:
        t = threading.Thread(target=self._run, name="segmentation-worker", daemon=True)
        t.start()
        return t

    def _run(self) -> None:
        while not self._slot.closed:
            frame = self._slot.take(timeout=0.2)
            if frame is not None:
                self._serve(frame)

    def _serve(self, frame: Frame) -> None:
        """One frame, start to finish (``worker.serve_frame``); counted and logged here."""
        result = serve_frame(time.monotonic() - frame.received, self.cfg.max_frame_age,
                             functools.partial(self._decode, frame.msg),
                             functools.partial(self._process, frame.msg.header),
                             self._closing)
        log = self.get_logger()
        if result.outcome is Outcome.PUBLISHED:
            self.stats.published(time.monotonic() - frame.received, result.backend_s)
        elif result.outcome is not Outcome.SHUTDOWN:
            self.stats.count(result.outcome.value)
        if result.outcome is Outcome.BAD:
            log.error(f"bad frame on {self._sub.topic_name}: {result.detail}",
                      throttle_duration_sec=5.0)
        elif result.outcome is Outcome.ERROR:
            log.error(f"inference failed: {result.detail}", throttle_duration_sec=5.0)

    def _closing(self) -> bool:
        """A signal shuts the context down before main closes the node: a frame in flight
        then fails in publish, which is the shutdown, not an inference error."""
        return self._slot.closed or not self.context.ok()

    def _listened(self) -> bool:
        pubs = [*self._pubs.values(), self._info_pub, self._png_pub, self._grid_pub]
        return any(p is not None and p.get_subscription_count() > 0 for p in pubs)

    def _process(self, header: Any, rgb: np.ndarray) -> float | None:
        """Segments and publishes one frame; returns the backend's own time, or None when no
        output has a subscriber (the frame was decoded, so a bad one is still counted)."""
        if not self._listened():
            return None
        conf = "confidence" in self._pubs and \
            self._pubs["confidence"].get_subscription_count() > 0
        s = self.segmenter.run(rgb, conf)
        out_rgb = rgb if self.cfg.output_resolution == "input" else s.rgb
        self._publish(header, out_rgb, s.ids, s.confidence, rgb.shape[:2])
        return s.backend_s

    def _decode(self, msg: Image | CompressedImage) -> np.ndarray:
        return decode_message(msg, self.cfg.max_input_pixels)

    def _watch_worker(self) -> str | None:
        """Restarts a worker thread that ended while the node runs; says so for diagnostics."""
        if self._slot.closed or self._worker.is_alive():
            return None
        self.stats.count("worker_restarts")
        self.get_logger().error("the segmentation worker thread ended; restarting it")
        self._worker = self._start_worker()
        return "worker thread ended and was restarted"

    def _publish(self, header: Any, rgb: np.ndarray, small_ids: np.ndarray,
                 small_conf: np.ndarray | None, frame_hw: tuple[int, ...]) -> None:
        """Outputs at ``rgb``'s size (the camera's or the model's), planner outputs first;
        ``frame_hw`` is the camera frame's size, which camera_info must describe."""
        wanted = [name for name, pub in self._pubs.items() if pub.get_subscription_count() > 0]
        png = self._png_pub is not None and self._png_pub.get_subscription_count() > 0
        if self._grid_pub is not None and self._grid_pub.get_subscription_count() > 0:
            self._publish_grid(header, small_ids, frame_hw)
        if self._info_pub.get_subscription_count() > 0:
            self._publish_camera_info(header, rgb.shape[:2], frame_hw)
        render = [*wanted, "mask"] if png and "mask" not in wanted else wanted
        if not render:
            return
        alpha = float(self.get_parameter("overlay_alpha").value) if "overlay" in wanted else 0.5
        # Each output goes out as soon as it is rendered, so the mask does not wait for colours.
        for name, view in self._renderer.iter_render(render, small_ids, rgb, alpha, small_conf):
            if name in wanted:
                msg = self._out_msgs[name]
                msg.header = header
                msg.height, msg.width = view.shape[:2]
                msg.step = view.strides[0]
                msg.data = self._renderer.payload(name)
                self._pubs[name].publish(msg)
            if name == "mask" and png:
                self._publish_png(header, view)

    def _publish_png(self, header: Any, mask: np.ndarray) -> None:
        """The mask as PNG. libpng refuses a side over PNG_MAX_SIDE, which a raw 1 x 1,000,001
        frame within max_input_pixels reaches at output_resolution: input; such a mask is
        counted and logged, and the other outputs of the frame still go out."""
        h, w = mask.shape[:2]
        ok, data = False, None
        if max(h, w) <= PNG_MAX_SIDE:  # beyond it libpng would also print to stderr per frame
            with contextlib.suppress(cv2.error):
                ok, data = cv2.imencode(".png", mask, PNG_FAST)
        if not ok or data is None:
            self.stats.count("errors")
            self.get_logger().error(
                f"mask/compressed not published: a {w}x{h} mask cannot be a PNG (at most "
                f"{PNG_MAX_SIDE:,} pixels a side); set output_resolution: model",
                throttle_duration_sec=5.0)
            return
        out = CompressedImage(header=header, format="mono8; png compressed")
        out.data = data.tobytes()
        # why the ignore below: the publisher exists while this output is on
        self._png_pub.publish(out)  # type: ignore[union-attr]

    def _intrinsics(self, ci: CameraInfo, frame_hw: tuple[int, ...], grid: bool) -> Intrinsics:
        """camera_info checked against itself and the frames (ValueError says what is wrong);
        a region of interest is the camera of that region (K refers to the full image).

        ``grid``: the camera the grid projects with (P and no distortion for a rectified
        image); otherwise only K and P matter, to be scaled for ``segmentation/camera_info``.
        """
        rect = grid and self.cfg.image_rectified
        intr = Intrinsics.from_fields(list(ci.k), list(ci.p), list(ci.d), int(ci.width),
                                      int(ci.height), str(ci.distortion_model),
                                      undistort=grid and not rect)
        roi = ci.roi
        if roi.width and roi.height and (roi.x_offset, roi.y_offset, roi.width, roi.height) \
                != (0, 0, intr.width, intr.height):
            if rect:  # image_proc rectifies the ROI into another region
                raise ValueError("camera_info has a roi and image_rectified is set: the "
                                 "rectified region is not the roi; send the rectified camera's "
                                 "camera_info")
            intr = intr.cropped(int(roi.x_offset), int(roi.y_offset), int(roi.width),
                                int(roi.height))
        check_aspect((intr.width, intr.height), (int(frame_hw[1]), int(frame_hw[0])))
        return intr.rectified() if rect else intr

    def _bad_camera_info(self, why: object, ci: CameraInfo, frame_hw: tuple[int, ...]) -> None:
        """Counted when the camera_info in use turns bad, not per frame (drivers repeat it)."""
        key = (*info_content(ci), tuple(frame_hw))
        if key != self._bad_info_key:
            self._bad_info_key = key
            self.stats.count("bad_camera_info")
        self.get_logger().error(f"camera_info on {self.cfg.camera_info_topic}: {why}",
                                throttle_duration_sec=5.0)

    def _publish_camera_info(self, header: Any, size: tuple[int, int],
                             frame_hw: tuple[int, ...]) -> None:
        """The camera_info of what is published: K and P scaled to the outputs' size."""
        ci = self._camera_info
        if ci is None:
            return
        # Drivers send the same calibration with every frame: scale it once per content.
        key = (*info_content(ci), size, tuple(frame_hw))
        if key != self._info_key:
            try:
                intr = self._intrinsics(ci, frame_hw, grid=False)  # K and P scale alone
            except (ValueError, cv2.error) as exc:  # checked once per content, like a good one
                self._bad_camera_info(exc, ci, frame_hw)
                self._info_out, self._info_key = None, key
                return
            h, w = size
            scaled = intr.scaled(w, h)
            out = CameraInfo(height=h, width=w, distortion_model=ci.distortion_model,
                             d=list(ci.d), r=list(ci.r))
            out.k = scaled.k.ravel().tolist()
            out.p = scaled.p.ravel().tolist()
            self._info_out, self._info_key = out, key
            self._bad_info_key = None  # a bad calibration after this one is counted again
        if self._info_out is None:  # this camera_info was refused (logged and counted)
            return
        self._info_out.header = header
        self._info_pub.publish(self._info_out)

    def _grid_build_too_soon(self) -> bool:
        """A calibration (or frame size) that changed every frame would cost every frame a
        build in the worker: the masks keep their rate and the grid waits, none published
        rather than one of another calibration."""
        now = self._grid_clock()
        if now - self._grid_built_at < GRID_BUILD_EVERY_S:
            self._grid_note = ("no grid: camera_info or frame size changes faster than one grid "
                               f"build per {GRID_BUILD_EVERY_S:g} s")
            self.get_logger().warning(self._grid_note, throttle_duration_sec=5.0)
            return True
        self._grid_built_at = now
        return False

    def _publish_grid(self, header: Any, small_ids: np.ndarray,
                      frame_hw: tuple[int, ...]) -> None:
        ci = self._camera_info
        if ci is None:
            self._grid_note = f"no grid: no camera_info on {self.cfg.camera_info_topic}"
            return
        key = (*info_content(ci), small_ids.shape, tuple(frame_hw))
        if key != self._grid_key:
            # Built once per camera_info (a few hundred ms at 480x360), then lookups per frame;
            # the last few are kept, so calibrations that alternate cost one build each.
            cached = self._grids.pop(key, None)
            if cached is None:
                try:
                    intr = self._intrinsics(ci, frame_hw, grid=True)
                    if self._grid_build_too_soon():
                        return
                    h, w = small_ids.shape
                    spec = GridSpec(self.cfg.grid_resolution, self.cfg.grid_x_range,
                                    self.cfg.grid_y_range)
                    cached = (GroundGrid(intr.scaled(w, h), self.cfg.camera_pose, spec),
                              f"ok: {spec.cols}x{spec.rows} cells of {spec.resolution} m")
                except (ValueError, cv2.error) as exc:
                    cached = (None, f"no grid: {exc}")
                    self._bad_camera_info(exc, ci, frame_hw)
            elif cached[0] is None:  # a refused calibration back in use: counted again
                self._bad_camera_info(cached[1].removeprefix("no grid: "), ci, frame_hw)
            self._grids[key] = cached
            while len(self._grids) > GRIDS_KEPT:
                self._grids.popitem(last=False)
            self._grid, self._grid_note = cached
            if self._grid is not None:
                self._bad_info_key = None
            self._grid_key = key
        if self._grid is None:
            return
        cells = self._grid.render(small_ids, self._renderer.luts["drivable"],
                                  self._renderer.luts["obstacles"])
        msg = self._grid_msg
        if msg is None or msg.info.width * msg.info.height != cells.size:
            # Reused per frame (publish copies it); the map's geometry is set once per grid.
            spec = self._grid.spec
            msg = self._grid_msg = OccupancyGrid()
            msg.header.frame_id = self.cfg.grid_frame
            msg.info.resolution = float(spec.resolution)
            msg.info.width, msg.info.height = spec.cols, spec.rows
            msg.info.origin.position.x = float(spec.x_range[0])
            msg.info.origin.position.y = float(spec.y_range[0])
            msg.info.origin.orientation.w = 1.0
            msg.data = array.array("b", bytes(cells.size))
        msg.header.stamp = header.stamp
        msg.info.map_load_time = header.stamp
        memoryview(msg.data).cast("B")[:] = cells.view(np.uint8).reshape(-1).data
        # why the ignore below: as above: created when publish_grid is on
        self._grid_pub.publish(msg)  # type: ignore[union-attr]

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        restarted = self._watch_worker()
        r = self.stats.roll()
        level, message = health(r, self.cfg.warn_latency_ms, restarted)
        b = self.segmenter.backend
        kv = values(r, backend=b.name, precision=b.precision, model=b.info.name,
                    grid=self._grid_note, output_resolution=self.cfg.output_resolution,
                    lost_reported=self._lost_reported)
        status = DiagnosticStatus(
            level=bytes([int(level)]), name=f"{self.get_fully_qualified_name()}: segmentation",
            # the camera this node serves, so each camera's node is told apart by its device
            message=message, hardware_id=self._sub.topic_name,
            values=[KeyValue(key=k, value=v) for k, v in kv.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def close(self) -> None:
        self._slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self.segmenter.backend.close()
        self._logs.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else argv
    # rcl logs its own "Failed to parse global arguments" line before raising; the raised
    # error carries the same words, so bad arguments read as one line.
    quiet = not any(a.startswith("rcl:=") for a in args)  # unless --log-level rcl:=... asked
    if quiet:
        rclpy.logging.set_logger_level("rcl", rclpy.logging.LoggingSeverity.FATAL)
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - rclpy's RCLError for a bad params file or argument
        detail = " ".join(str(exc).split())[:300]
        print(f"[{NODE_NAME}] error: ROS arguments or params file rejected: {detail}",
              file=sys.stderr)
        return 2
    finally:
        if quiet:
            rclpy.logging.set_logger_level("rcl", rclpy.logging.LoggingSeverity.UNSET)
    node: SegmentationNode | None = None
    code = 0
    try:
        node = SegmentationNode(args)
        rclpy.spin(node)
    except ConfigError as exc:
        print(f"[{NODE_NAME}] error: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # SIGINT / SIGTERM: rclpy's signal handler shut the context down
    except Exception:  # noqa: BLE001
        # A signal racing spin's wait can surface as an RCLError of the context it shut
        # down: the same clean stop. Only a live context means a fault.
        if rclpy.ok():
            raise
    finally:
        # A second Ctrl-C while the worker finishes its frame must not print a traceback.
        with contextlib.suppress(KeyboardInterrupt):
            if node is not None:
                node.close()
                with contextlib.suppress(Exception):  # after a signal the context may be gone
                    node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
