"""Camera geometry for planner outputs: camera_info scaling and a flat-ground occupancy grid.

Plain NumPy/OpenCV, no ROS. Frames follow REP-103: the grid frame is x forward, y left, z up
with the ground at z = 0; the camera body has the same axes (positive pitch looks down); its
optical frame is z forward, x right, y down.

The pixel -> cell mapping depends only on the intrinsics, the pose and the grid, so it is built
once (``GroundGrid``) and a frame costs a few array lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
CONTACT_RUN = 3  # obstacle pixels stacked at a column's bottom for a ground contact
# Optical axes in body axes: optical z -> body x, optical x -> body -y, optical y -> body -z.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


DISTORTION_LENGTHS = {"plumb_bob": (4, 5), "rational_polynomial": (8, 12, 14),
                      "": (4, 5, 8, 12, 14)}
"""Coefficient counts per camera_info distortion model (sensor_msgs/distortion_models.h) that
OpenCV's pinhole model takes; no coefficients means none, whatever the model."""


def check_distortion(model: str, d: np.ndarray) -> None:
    """ValueError for a distortion this pinhole geometry cannot undo: a fisheye (equidistant)
    lens, another model, or a coefficient count OpenCV refuses."""
    if not d.size or not d.any():
        return
    if model not in DISTORTION_LENGTHS:
        raise ValueError(f"camera_info distortion_model {model!r} is not supported (plumb_bob "
                         "or rational_polynomial; rectify a fisheye image first)")
    if d.size not in DISTORTION_LENGTHS[model]:
        raise ValueError(f"camera_info D has {d.size} coefficients; {model or 'OpenCV'} takes "
                         f"{' or '.join(map(str, DISTORTION_LENGTHS[model]))}")


def check_aspect(intr_size: tuple[int, int], frame_size: tuple[int, int]) -> None:
    """ValueError when camera_info describes another aspect ratio than the frames (a crop, a
    rotated image or another camera's calibration): scaling K to them would be wrong."""
    (iw, ih), (fw, fh) = intr_size, frame_size
    if abs((iw * fh) / (ih * fw) - 1.0) > 0.01:
        raise ValueError(f"camera_info is for {iw}x{ih} but frames are {fw}x{fh}: another "
                         "aspect ratio (a crop or another camera?); send its own camera_info")


@dataclass(frozen=True)
class Intrinsics:
    """What camera_info says about one image size: K, P (3x4), distortion, width, height."""

    k: np.ndarray
    p: np.ndarray
    d: np.ndarray
    width: int
    height: int

    @classmethod
    def from_fields(cls, k: Sequence[float], p: Sequence[float], d: Sequence[float],
                    width: int, height: int, distortion_model: str = "",
                    undistort: bool = True) -> Intrinsics:
        """camera_info's fields, checked: a message OpenCV would choke on is a ValueError.

        ``undistort=False`` leaves D out (only checked finite): for scaling K and P, and for a
        rectified image, whose lens (a fisheye too) is undone already.
        """
        if len(k) != 9 or len(p) not in (0, 12):
            raise ValueError(f"camera_info needs K with 9 and P with 12 values, got {len(k)} "
                             f"and {len(p)}")
        km = np.asarray(k, np.float64).reshape(3, 3)
        pm = np.asarray(p, np.float64).reshape(3, 4) if len(p) else np.zeros((3, 4))
        dv = np.asarray(d, np.float64).ravel()
        if width <= 0 or height <= 0:
            raise ValueError(f"camera_info size {width}x{height} is not positive")
        for name, a in (("K", km), ("P", pm), ("D", dv)):
            if not np.isfinite(a).all():
                raise ValueError(f"camera_info {name} has non-finite values: {a.ravel().tolist()}")
        if not (km[0, 0] > 0 and km[1, 1] > 0):
            raise ValueError(f"camera_info K has no focal length: fx={km[0, 0]}, fy={km[1, 1]}")
        if undistort:
            check_distortion(distortion_model, dv)
        if not undistort or not dv.any():  # all zeros, whatever the model: a pinhole camera
            dv = np.zeros(0)
        if not pm.any():  # an unrectified camera may leave P empty: K without translation
            pm = np.hstack([km, np.zeros((3, 1))])
        return cls(km, pm, dv, int(width), int(height))

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera described at another image size (pixel centres kept aligned)."""
        sx, sy = width / self.width, height / self.height
        s = np.diag([sx, sy, 1.0])
        k = s @ self.k
        p = s @ self.p
        # Pixel-centre convention: pixel i covers [i, i+1); its centre maps to (i + 0.5) * s.
        k[0, 2] = (self.k[0, 2] + 0.5) * sx - 0.5
        k[1, 2] = (self.k[1, 2] + 0.5) * sy - 0.5
        p[0, 2] = (self.p[0, 2] + 0.5) * sx - 0.5
        p[1, 2] = (self.p[1, 2] + 0.5) * sy - 0.5
        return Intrinsics(k, p, self.d.copy(), int(width), int(height))

    def cropped(self, x: int, y: int, width: int, height: int) -> Intrinsics:
        """The camera of a region of interest (camera_info's ``roi``, in full-size pixels)."""
        if not (0 <= x and 0 <= y and 0 < width and 0 < height and x + width <= self.width
                and y + height <= self.height):
            raise ValueError(f"camera_info roi {width}x{height} at ({x}, {y}) is not inside "
                             f"the {self.width}x{self.height} image")
        k, p = self.k.copy(), self.p.copy()
        k[0, 2] -= x
        k[1, 2] -= y
        p[0, 2] -= x
        p[1, 2] -= y
        return Intrinsics(k, p, self.d.copy(), int(width), int(height))

    def rectified(self) -> Intrinsics:
        """The camera of a rectified image (``image_rect``): camera_info's K and D describe the
        raw image, P's left 3x3 the rectified one, with no distortion left to undo."""
        return Intrinsics(self.p[:, :3].copy(), self.p.copy(), np.zeros(0), self.width,
                          self.height)


R_MAX = 20.0  # tan of 87 degrees: no pinhole lens model sees further off-axis


def _radial_curve(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted radius r against distorted r_d (OpenCV's radial terms), up to where r_d
    first stops growing: past it a polynomial lens model folds back."""
    c = np.zeros(14)
    c[:d.size] = d
    k1, k2, _p1, _p2, k3, k4, k5, k6 = c[:8]
    r = np.linspace(0.0, R_MAX, 40001)
    r2 = r * r
    with np.errstate(all="ignore"):
        rd = r * (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    bad = ~np.isfinite(rd[1:]) | (np.diff(rd) <= 0)
    end = int(np.argmax(bad)) + 1 if bad.any() else r.size
    return r[:end], rd[:end]


def undistort_pixels(intr: Intrinsics, pix: np.ndarray) -> np.ndarray:
    """(N, 2) pixels -> (N, 2) normalised undistorted coordinates; NaN past what the lens
    model reaches before it folds back.

    cv2.undistortPoints runs five fixed-point steps: off by a pixel and more at a wide lens's
    corners, and on the folded branch for some. Here the radial part is inverted on its rising
    curve, then Newton steps on OpenCV's own projection take in the tangential and prism terms.
    """
    k = intr.k
    xd = np.column_stack([(pix[:, 0] - k[0, 2] - k[0, 1] * (pix[:, 1] - k[1, 2]) / k[1, 1])
                          / k[0, 0], (pix[:, 1] - k[1, 2]) / k[1, 1]])
    if not intr.d.size:
        return xd
    r, rd = _radial_curve(intr.d)
    rdn = np.hypot(xd[:, 0], xd[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(rdn > 0, np.interp(rdn, rd, r) / rdn, 1.0)
    x = xd * scale[:, None]
    x[rdn > rd[-1]] = np.nan  # beyond the fold: no ray of this model lands there

    def project(p: np.ndarray) -> np.ndarray:
        pts = np.column_stack([p, np.ones(len(p))])
        out, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k, intr.d)
        return out.reshape(-1, 2)

    ok = np.isfinite(x[:, 0])
    eps = 1e-6
    for _ in range(6):  # radial-only: exact already, one check; tangential: two or three steps
        xo = x[ok]
        f0 = project(xo)
        res = pix[ok] - f0
        if np.abs(res).max(initial=0.0) < 1e-3:  # pixels: far below any cell
            break
        jx = (project(xo + [eps, 0.0]) - f0) / eps
        jy = (project(xo + [0.0, eps]) - f0) / eps
        det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
        good = np.abs(det) > 1e-12
        step = np.zeros_like(xo)
        step[good, 0] = (res[good, 0] * jy[good, 1] - jy[good, 0] * res[good, 1]) / det[good]
        step[good, 1] = (jx[good, 0] * res[good, 1] - res[good, 0] * jx[good, 1]) / det[good]
        x[ok] = xo + step
    return x


def visible_radius(intr: Intrinsics) -> float:
    """The largest undistorted radius (tan of the angle off the optical axis) the image sees.

    Beyond some radius a polynomial lens model folds back: a point far off-axis projects into
    the image although the lens cannot see it. Rays past the image border's radius are not
    seen; a model that already folds inside the border is no calibration (ValueError).
    """
    w, h = intr.width, intr.height
    if not intr.d.size:
        return np.inf
    n = 512  # along each side: tangential terms can put the widest ray off the corners
    us, vs = np.linspace(-0.5, w - 0.5, n), np.linspace(-0.5, h - 0.5, n)
    edge = np.concatenate([np.column_stack([us, np.full(n, -0.5)]),
                           np.column_stack([us, np.full(n, h - 0.5)]),
                           np.column_stack([np.full(n, -0.5), vs]),
                           np.column_stack([np.full(n, w - 0.5), vs])])
    norm = undistort_pixels(intr, edge)
    if not np.isfinite(norm).all():
        raise ValueError(f"camera_info D {intr.d.tolist()} folds back inside the image: not a "
                         "calibration of this lens")
    return float(np.hypot(norm[:, 0], norm[:, 1]).max()) * (1 + 1e-9)


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), body to parent frame (REP-103 fixed-axis convention)."""
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class GridSpec:
    resolution: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ValueError(f"grid_resolution must be positive, got {self.resolution}")
        for name, (lo, hi) in (("grid_x_range", self.x_range), ("grid_y_range", self.y_range)):
            if not hi > lo:
                raise ValueError(f"{name} must be [min, max] with max > min, got [{lo}, {hi}]")
        # A finite range over a tiny resolution can overflow to inf, which int() cannot take.
        cx, cy = ((hi - lo) / self.resolution for lo, hi in (self.x_range, self.y_range))
        if not (np.isfinite(cx) and np.isfinite(cy) and self.cols * self.rows <= 4_000_000):
            raise ValueError(f"grid of {cx:.4g}x{cy:.4g} cells is too large; "
                             "raise grid_resolution or narrow the ranges")

    @property
    def cols(self) -> int:  # along x
        return int(np.ceil((self.x_range[1] - self.x_range[0]) / self.resolution - 1e-9))

    @property
    def rows(self) -> int:  # along y
        return int(np.ceil((self.y_range[1] - self.y_range[0]) / self.resolution - 1e-9))


def check_pose(pose: Sequence[float]) -> None:
    """ValueError for a pose this flat-ground geometry cannot use: not six finite numbers, or
    a camera at or below the ground (z <= 0, most often a sign slip)."""
    if len(pose) != 6 or not np.isfinite(np.asarray(pose, np.float64)).all():
        raise ValueError(f"camera_pose must be six finite numbers [x, y, z, roll, pitch, yaw], "
                         f"got {list(pose)}")
    if not float(pose[2]) > 0:
        raise ValueError(f"camera_pose z is {float(pose[2])} m: the camera must be above the "
                         "ground (z = 0 in grid_frame)")


def ground_points(intr: Intrinsics, pose: Sequence[float]) -> np.ndarray:
    """(H, W, 2) ground-plane x, y for every pixel centre; NaN where the ray misses the ground."""
    check_pose(pose)
    x, y, z, roll, pitch, yaw = (float(v) for v in pose)
    h, w = intr.height, intr.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    norm = undistort_pixels(intr, np.stack([u.ravel(), v.ravel()], 1))
    rays = np.column_stack([norm, np.ones(len(norm))])  # optical frame
    d = rays @ (rotation_rpy(roll, pitch, yaw) @ OPTICAL_TO_BODY).T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[:, 2] < -1e-9, -z / d[:, 2], np.nan)
    pts = np.column_stack([x + t * d[:, 0], y + t * d[:, 1]])
    return pts.reshape(h, w, 2)


def project_ground(intr: Intrinsics, pose: Sequence[float], xy: np.ndarray) -> np.ndarray:
    """(N, 2) pixel coordinates of ground points (x, y, 0); NaN behind the camera or outside
    what the lens sees (``visible_radius``)."""
    check_pose(pose)
    x, y, z, roll, pitch, yaw = (float(v) for v in pose)
    r_cw = (rotation_rpy(roll, pitch, yaw) @ OPTICAL_TO_BODY).T  # grid -> optical
    t = -r_cw @ np.array([x, y, z])
    pts = np.column_stack([xy, np.zeros(len(xy))])
    cam = pts @ r_cw.T + t
    rvec, _ = cv2.Rodrigues(r_cw)
    px, _ = cv2.projectPoints(pts, rvec, t, intr.k, intr.d if intr.d.size else None)
    px = px.reshape(-1, 2)
    ahead = cam[:, 2] > 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.hypot(cam[:, 0], cam[:, 1]) / cam[:, 2]
    px[~ahead | ~(radius <= visible_radius(intr))] = np.nan
    return px


class GroundGrid:
    """Cell <-> pixel mappings for one camera_info, pose and grid; ``render`` per frame.

    Ground cells look their class up at the pixel their centre projects to (so far cells, which
    span less than a pixel row, are not left empty); obstacle contacts go the other way, from the
    lowest obstacle pixel of each image column down its ray to the ground.
    """

    def __init__(self, intr: Intrinsics, pose: Sequence[float], spec: GridSpec) -> None:
        self.spec = spec
        self.shape = (intr.height, intr.width)
        h, w = self.shape
        # Cell centres -> pixel index (-1: outside the image or behind the camera).
        cx = spec.x_range[0] + (np.arange(spec.cols) + 0.5) * spec.resolution
        cy = spec.y_range[0] + (np.arange(spec.rows) + 0.5) * spec.resolution
        gx, gy = np.meshgrid(cx, cy)  # (rows, cols): rows along y, columns along x
        px = project_ground(intr, pose, np.column_stack([gx.ravel(), gy.ravel()]))
        u, v = np.round(px[:, 0]), np.round(px[:, 1])
        seen = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        self._seen_cells = np.flatnonzero(seen)
        self._seen_pix = (v[seen] * w + u[seen]).astype(np.int64)
        # Pixels -> cell index (-1: the ray misses the ground or the grid).
        pts = ground_points(intr, pose)
        with np.errstate(invalid="ignore"):
            col = np.floor((pts[..., 0] - spec.x_range[0]) / spec.resolution)
            row = np.floor((pts[..., 1] - spec.y_range[0]) / spec.resolution)
            ok = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < spec.cols) & \
                (row >= 0) & (row < spec.rows)
        cell = np.full(self.shape, -1, np.int64)
        cell[ok] = (row[ok] * spec.cols + col[ok]).astype(np.int64)
        self.cell = cell
        self.cells = np.full(spec.rows * spec.cols, UNKNOWN, np.int8)

    def render(self, ids: np.ndarray, drivable_lut: np.ndarray,
               obstacle_lut: np.ndarray) -> np.ndarray:
        """(rows, cols) int8: 0 drivable ground, 100 an obstacle's ground contact, -1 unknown.

        An obstacle's contact is the lowest obstacle pixel of each image column (its projected
        top would lie far behind it). ``ids`` must have the mapping's size. The array returned
        is reused by the next call.
        """
        if ids.shape != self.shape:
            raise ValueError(f"ids are {ids.shape}, the grid mapping was built for {self.shape}")
        out = self.cells
        out.fill(UNKNOWN)
        free = drivable_lut[ids.ravel()[self._seen_pix]] > 0
        out[self._seen_cells[free]] = FREE
        # A 0/1 table viewed as bool: one LUT pass, faster than fancy indexing and a compare.
        obst = cv2.LUT(ids, (obstacle_lut > 0).astype(np.uint8)).view(bool)
        lowest = ids.shape[0] - 1 - np.argmax(obst[::-1], axis=0)
        # A contact needs a short vertical run of obstacle above it: a silhouette's corner
        # column or a stray pixel near the horizon would otherwise mark ground far behind.
        run = obst.any(axis=0) & (lowest >= CONTACT_RUN - 1)
        for k in range(1, CONTACT_RUN):
            run &= obst[np.maximum(lowest - k, 0), np.arange(ids.shape[1])]
        # Ragged silhouette edges: a column at an obstacle's side may stop short of the ground;
        # its neighbours' lower contact is the better estimate (conservative: nearer).
        low = np.where(run, lowest, -1)
        low[1:] = np.maximum(low[1:], np.where(run[1:], low[:-1], -1))
        low[:-1] = np.maximum(low[:-1], np.where(run[:-1], np.where(run[1:], lowest[1:], -1), -1))
        cols = np.flatnonzero(run)
        contact = self.cell[low[cols], cols]
        out[contact[contact >= 0]] = OCCUPIED
        return out.reshape(self.spec.rows, self.spec.cols)
