"""The planner's view of a few report frames: confidence and the flat-ground occupancy grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seg_perception.core.geometry import GridSpec, GroundGrid, Intrinsics
from seg_perception.core.masks import group_lut
from seg_perception.evaluation.tally import OverlayFrame
from seg_perception.inference.backend import Backend
from seg_perception.inference.factory import create_backend
from seg_perception.inference.segmenter import Segmenter
from seg_perception.model.contract import CONFIDENCE_NAME

# A plausible camera for CamVid's 480x360 frames (the data set publishes no calibration): a
# 62-degree horizontal field of view, mounted 1.3 m up, looking level. For the report's
# pictures only; the node takes its intrinsics from camera_info and its pose from camera_pose.
CAMVID_K = (400.0, 0.0, 239.5, 0.0, 400.0, 179.5, 0.0, 0.0, 1.0)


CAMVID_POSE = (0.0, 0.0, 1.3, 0.0, 0.02, 0.0)


def planner_views(model: Path, frames: Sequence[OverlayFrame], threads: int = 2,
                  backend: Backend | None = None) -> None:
    """Fills each frame's confidence and flat-ground grid, for the report's pictures.

    ``backend``: an open one to use and leave open (a fleet worker's, shared by its bags);
    otherwise an ONNX Runtime FP32 one is opened for these few frames and closed.
    """
    if not frames:
        return
    b = backend if backend is not None else create_backend(model, "onnxruntime", "fp32", threads)
    try:
        with_conf = CONFIDENCE_NAME in b.info.outputs
        seg = Segmenter(b)
        h, w = seg.input_size
        groups = b.info.classes
        drivable = group_lut(groups.ids_of(groups.drivable))
        obstacles = group_lut(groups.ids_of(groups.obstacles))
        grid = GroundGrid(Intrinsics.from_fields(CAMVID_K, [], [], 480, 360).scaled(w, h),
                          CAMVID_POSE, GridSpec(0.1, (0.0, 30.0), (-10.0, 10.0)))
        for f in frames:
            _, ids, conf, _ = seg.run(f.rgb, with_conf)
            f.confidence = conf
            f.grid = grid.render(ids, drivable, obstacles).copy()
    finally:
        if b is not backend:
            b.close()
