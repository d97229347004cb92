"""Flat-ground grid from a synthetic camera: a road rectangle and a box rendered by projecting
their 3-D corners with OpenCV, then checked cell by cell."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seg_perception.core.geometry import (
    FREE,
    OCCUPIED,
    OPTICAL_TO_BODY,
    UNKNOWN,
    GridSpec,
    GroundGrid,
    Intrinsics,
    ground_points,
    project_ground,
    rotation_rpy,
    visible_radius,
)
from seg_perception.core.masks import group_lut

W, H = 480, 360
K = [400.0, 0, 239.5, 0, 400.0, 179.5, 0, 0, 1]
POSE = [1.0, 0.5, 1.5, 0.0, 0.12, 0.05]  # 1.5 m up, pitched down ~7 degrees, yawed a little
ROAD, CAR, SKY = 3, 8, 0


def intr(w: int = W, h: int = H) -> Intrinsics:
    return Intrinsics.from_fields(K, [], [], w, h)


def project(points: np.ndarray, pose=POSE, k=K) -> np.ndarray:
    """World points to pixels through OpenCV's own projection (independent of ground_points)."""
    r_wb = rotation_rpy(*pose[3:])
    r_cw = (r_wb @ OPTICAL_TO_BODY).T
    t = -r_cw @ np.asarray(pose[:3])
    rvec, _ = cv2.Rodrigues(r_cw)
    px, _ = cv2.projectPoints(points.astype(np.float64), rvec, t,
                              np.asarray(k).reshape(3, 3), None)
    return px.reshape(-1, 2)


def scene() -> np.ndarray:
    ids = np.full((H, W), SKY, np.uint8)  # sky/other: neither drivable nor obstacle
    road = np.array([[4, -2, 0], [20, -2, 0], [20, 3, 0], [4, 3, 0]], np.float64)
    cv2.fillPoly(ids, [np.round(project(road)).astype(np.int32)], ROAD)
    box = np.array([[x, y, z] for x in (10, 11) for y in (0, 1.2) for z in (0, 1.5)], np.float64)
    hull = cv2.convexHull(np.round(project(box)).astype(np.int32))
    cv2.fillPoly(ids, [hull], CAR)
    return ids


def cell_of(spec: GridSpec, x: float, y: float) -> tuple[int, int]:
    res = spec.resolution
    return int((y - spec.y_range[0]) // res), int((x - spec.x_range[0]) // res)


def test_axes_follow_rep103():
    # The optical axis of an unrotated camera looks along body x; pitching down tilts it to -z.
    assert np.allclose(OPTICAL_TO_BODY @ [0, 0, 1], [1, 0, 0])
    assert np.allclose(rotation_rpy(0, np.pi / 2, 0) @ [1, 0, 0], [0, 0, -1])
    assert np.allclose(rotation_rpy(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0])
    # Looking straight down from 2 m: the image centre sees the point below the camera.
    pts = ground_points(intr(), [3.0, 1.0, 2.0, 0.0, np.pi / 2, 0.0])
    assert np.allclose(pts[179, 239], [3.0, 1.0], atol=0.01)  # half a pixel off centre
    # Pixels to the right of centre see ground to the right (negative y).
    assert pts[179, 400, 1] < 1.0


def test_rays_above_the_horizon_miss_the_ground():
    pts = ground_points(intr(), [0, 0, 1.5, 0, 0.0, 0])  # level camera: top half is sky
    assert np.isnan(pts[:179]).all() and np.isfinite(pts[181:]).all()


def test_grid_cells_from_a_rendered_scene():
    spec = GridSpec(0.25, (0.0, 30.0), (-10.0, 10.0))
    grid = GroundGrid(intr(), POSE, spec)
    g = grid.render(scene(), group_lut([ROAD]), group_lut([CAR]))
    assert g.shape == (spec.rows, spec.cols) == (80, 120) and g.dtype == np.int8
    # Road interior is free, well away from its borders and from the box and its shadow.
    for x, y in [(5.0, -1.0), (8.0, 2.0), (15.0, -1.5), (18.0, 2.5), (6.5, 0.5)]:
        assert g[cell_of(spec, x, y)] == FREE, (x, y)
    # The box stands on the ground along its near face x = 10, y in 0..1.2: occupied there.
    contact = [g[cell_of(spec, xx, yy)] for xx in (9.9, 10.1) for yy in (0.2, 0.6, 1.0)]
    assert OCCUPIED in contact
    occ = np.argwhere(g == OCCUPIED)
    xs = spec.x_range[0] + (occ[:, 1] + 0.5) * spec.resolution
    ys = spec.y_range[0] + (occ[:, 0] + 0.5) * spec.resolution
    assert (np.abs(xs - 10.0) < 0.6).all() and ((ys > -0.4) & (ys < 1.6)).all()
    # Not its projected top: nothing occupied far behind the box.
    assert not (g[:, cell_of(spec, 14.0, 0)[1]:] == OCCUPIED).any()
    # Outside the road and beyond what the camera sees: unknown.
    for x, y in [(25.0, -8.0), (0.5, 0.0), (29.0, 9.0), (12.0, 6.0)]:
        assert g[cell_of(spec, x, y)] == UNKNOWN, (x, y)


def test_scaled_intrinsics_see_the_same_ground():
    full = ground_points(intr(), POSE)
    small = intr().scaled(240, 180)
    half = ground_points(small, POSE)
    # The centre of small pixel (i, j) is the centre of the 2x2 full-size block it covers.
    block = (full[1::2, 1::2] + full[:-1:2, :-1:2]) / 2  # NaN where either misses the ground
    ok = np.isfinite(block[..., 0]) & (block[..., 0] < 15)
    assert np.allclose(half[ok], block[ok], rtol=0.05, atol=0.05)
    assert small.k[0, 0] == pytest.approx(200.0) and small.width == 240


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="grid_resolution"):
        GridSpec(0.0, (0, 30), (-10, 10))
    with pytest.raises(ValueError, match="grid_x_range"):
        GridSpec(0.1, (30, 0), (-10, 10))
    # finite ranges whose cell count overflows a float, or int(): refused, not OverflowError
    for res, xr in ((0.1, (-1e308, 1e308)), (0.1, (0.0, 1e308)), (1e-300, (0.0, 30.0))):
        with pytest.raises(ValueError, match="too large"):
            GridSpec(res, xr, (-10, 10))
    with pytest.raises(ValueError, match="too large"):
        GridSpec(0.001, (0, 3000), (-10, 10))  # 3 M x 20 k cells: finite, still too many
    with pytest.raises(ValueError, match="camera_pose"):
        ground_points(intr(), [0, 0, 1])
    # A camera at or below the ground (a sign slip) mapped cells to pixels above the horizon.
    for z in (0.0, -1.5, float("nan")):
        with pytest.raises(ValueError, match="camera_pose"):
            GroundGrid(intr(), [0, 0, z, 0, 0.1, 0], GridSpec(0.5, (0, 30), (-10, 10)))
    with pytest.raises(ValueError, match="focal"):
        Intrinsics.from_fields([0] * 9, [], [], W, H)
    grid = GroundGrid(intr(), POSE, GridSpec(0.5, (0, 30), (-10, 10)))
    with pytest.raises(ValueError, match="built for"):
        grid.render(np.zeros((10, 10), np.uint8), group_lut([ROAD]), group_lut([CAR]))


@pytest.mark.parametrize(("model", "d", "why"), [
    ("plumb_bob", [0.1, 0.0, 0.0], "3 coefficients; plumb_bob takes 4 or 5"),
    ("", [0.1] * 6, "6 coefficients; OpenCV takes"),
    ("equidistant", [0.1, 0.01, 0.0, 0.0], "'equidistant' is not supported"),
    ("plumb_bob", [0.1, float("nan"), 0, 0, 0], "D has non-finite"),
])
def test_camera_info_opencv_would_choke_on_is_a_value_error(model, d, why):
    """Every case here made cv2.undistortPoints raise cv2.error (not a ValueError), or built a
    grid of NaN, before the check."""
    with pytest.raises(ValueError, match=why):
        Intrinsics.from_fields(K, [], d, W, H, model)


def test_camera_info_distortion_that_is_accepted():
    assert Intrinsics.from_fields(K, [], [0.1, -0.05, 0, 0, 0.01], W, H, "plumb_bob").d.size == 5
    assert Intrinsics.from_fields(K, [], [0.1] * 8, W, H, "rational_polynomial").d.size == 8
    # No distortion, whatever the model says (drivers of rectified streams send zeros).
    assert Intrinsics.from_fields(K, [], [0.0] * 4, W, H, "equidistant").d.size == 0
    ground_points(Intrinsics.from_fields(K, [], [0.1, -0.05, 0, 0, 0.01], W, H, "plumb_bob"),
                  POSE)


def test_camera_info_of_another_aspect_ratio_is_refused():
    from seg_perception.core.geometry import check_aspect

    check_aspect((640, 480), (1280, 960))  # same camera, another resolution
    check_aspect((640, 480), (643, 481))  # rounding in a driver's binning
    with pytest.raises(ValueError, match="camera_info is for 640x480 but frames are 1280x720"):
        check_aspect((640, 480), (1280, 720))


BARREL = [-0.2, 0.0, 0.0, 0.0, 0.0]  # r_d = r (1 - 0.2 r^2) turns back at r = 1.29 (52 deg)


def test_cells_the_lens_cannot_see_stay_unknown():
    """Past r = 1.65 (59 degrees off-axis) the polynomial's r_d falls back inside the image's
    corners: such cells projected into the image (256 marked free on an all-road frame)."""
    cam = Intrinsics.from_fields(K, [], BARREL, W, H, "plumb_bob")
    pose = [0.0, 0.0, 1.3, 0.0, 0.0, 0.0]
    spec = GridSpec(0.25, (0.0, 30.0), (-10.0, 10.0))
    g = GroundGrid(cam, pose, spec).render(np.full((H, W), ROAD, np.uint8), group_lut([ROAD]),
                                           group_lut([CAR]))
    # What the image sees, pixel by pixel, bounds the free cells: each lies within a cell of a
    # ground point some pixel sees.
    pts = ground_points(cam, pose).reshape(-1, 2)
    pts = pts[np.isfinite(pts[:, 0])]
    bearing = np.degrees(np.arctan2(np.abs(pts[:, 1]), pts[:, 0])).max()
    free = np.argwhere(g == FREE)
    assert len(free) > 1000
    xs = spec.x_range[0] + (free[:, 1] + 0.5) * spec.resolution
    ys = spec.y_range[0] + (free[:, 0] + 0.5) * spec.resolution
    assert np.degrees(np.arctan2(np.abs(ys), xs)).max() <= bearing + 1.0
    # (1.3, 1.7) lies 60 degrees off-axis (r = 1.7): the lens model sent it to pixel (10, 352).
    assert g[cell_of(spec, 1.3, 1.7)] == UNKNOWN
    assert np.isnan(project_ground(cam, pose, np.array([[1.275, 1.733]]))).all()
    # Inside the view the projection is untouched: a pixel's own ground point comes back to it.
    back = project_ground(cam, pose, ground_points(cam, pose)[300, 100][None])
    assert np.allclose(back, [[100, 300]], atol=0.1)


def test_a_distortion_that_folds_inside_the_image_is_no_calibration():
    assert visible_radius(intr()) == np.inf
    r = visible_radius(Intrinsics.from_fields(K, [], BARREL, W, H, "plumb_bob"))
    assert 0.85 < r < 0.95  # the corners: r_d = 0.75 is r = 0.895
    folded = Intrinsics.from_fields(K, [], [-2.0, 0.0, 0.0, 0.0, 0.0], W, H, "plumb_bob")
    with pytest.raises(ValueError, match="folds back inside the image"):
        GroundGrid(folded, POSE, GridSpec(0.5, (0, 30), (-10, 10)))


def test_a_rectified_image_uses_p_and_no_distortion():
    """image_rect's camera_info still carries the raw lens: undoing D again moved a pixel's
    ground point from 4.32 m to 3.76 m."""
    p = [420.0, 0, 241.0, 0, 0, 420.0, 178.0, 0, 0, 0, 1, 0]
    raw = Intrinsics.from_fields(K, p, [-0.3, 0.1, 0, 0, 0], W, H, "plumb_bob")
    rect = raw.rectified()
    assert rect.d.size == 0 and np.array_equal(rect.k, np.reshape(p, (3, 4))[:, :3])
    pinhole = Intrinsics.from_fields(p[:3] + p[4:7] + p[8:11], [], [], W, H)
    assert np.allclose(ground_points(rect, POSE), ground_points(pinhole, POSE), equal_nan=True)
    assert not np.allclose(ground_points(raw, POSE), ground_points(rect, POSE), equal_nan=True)


@pytest.mark.parametrize(("f", "d"), [
    (300.0, [-0.05, 0.2, 0.0, 0.0, 0.0]),  # cv2.undistortPoints: 0.982 against 1.063
    (220.0, [-0.425, 0.1, 0.0, 0.0, -0.005]),  # folds at r = 3.36, past its corner (2.29):
    (250.0, [-0.3, 0.05, 0.001, -0.002, 0.0]),  # refused before; tangential terms too
])
def test_a_wide_lens_sees_to_its_corners_exactly(f, d):
    """Five fixed-point steps (cv2.undistortPoints) put a wide lens's corner rays off by
    pixels, or on the folded branch: the visible radius came out too small (seen cells left
    unknown) or the calibration was refused."""
    k = [f, 0, 319.5, 0, f, 239.5, 0, 0, 1]
    cam = Intrinsics.from_fields(k, [], d, 640, 480, "plumb_bob")
    r = visible_radius(cam)
    corner = np.array([[-0.5, -0.5], [639.5, 479.5], [20.0, 300.0]])
    from seg_perception.core.geometry import undistort_pixels

    norm = undistort_pixels(cam, corner)
    back, _ = cv2.projectPoints(np.column_stack([norm, np.ones(3)]), np.zeros(3), np.zeros(3),
                                np.reshape(k, (3, 3)), np.asarray(d))
    assert np.allclose(back.reshape(-1, 2), corner, atol=1e-3)
    u = np.linspace(-0.5, 639.5, 4000)
    v = np.linspace(-0.5, 479.5, 3000)
    border = np.concatenate([np.column_stack([u, np.full_like(u, -0.5)]),
                             np.column_stack([u, np.full_like(u, 479.5)]),
                             np.column_stack([np.full_like(v, -0.5), v]),
                             np.column_stack([np.full_like(v, 639.5), v])])
    widest = np.hypot(*undistort_pixels(cam, border).T).max()
    assert np.hypot(norm[:2, 0], norm[:2, 1]).max() <= r == pytest.approx(widest, rel=1e-4)
