"""Confusion-matrix metrics: mIoU over all scored pixels, not a mean of per-frame scores."""

from __future__ import annotations

import numpy as np

from seg_perception.core.classes import IGNORE_LABEL


class ConfusionMatrix:
    """Rows are ground truth, columns predictions.

    A prediction outside 0..C-1 lands in an extra last column, so it counts as a miss for its
    true class without being credited to any class. A label outside 0..C-1 that is not an
    ignore id (another class set's ids) is not scored, and counted in ``out_of_range``.
    """

    def __init__(self, num_classes: int, ignore: int | tuple[int, ...] = IGNORE_LABEL) -> None:
        self.num_classes = num_classes
        self.ignore = (ignore,) if isinstance(ignore, int) else tuple(ignore)
        self._full = np.zeros((num_classes, num_classes + 1), np.int64)
        self.out_of_range = 0  # label pixels neither a class nor ignored: not scored

    @property
    def mat(self) -> np.ndarray:
        """The (C, C) matrix of in-range predictions."""
        return self._full[:, : self.num_classes]

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Adds one frame; labels equal to ``ignore`` or outside 0..C-1 are not scored."""
        if pred.shape != label.shape:
            raise ValueError(f"prediction shape {pred.shape} != label shape {label.shape}")
        c = self.num_classes
        t = label.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        keep = (t >= 0) & (t < c)
        inside = [i for i in self.ignore if 0 <= i < c]
        if inside:  # an ignore id among the class ids is not scored either
            keep &= ~np.isin(t, inside)
        rest = t[(t < 0) | (t >= c)]
        if rest.size:  # the isin pass only over pixels outside the classes
            self.out_of_range += int(rest.size - np.isin(rest, self.ignore).sum())
        t, p = t[keep], p[keep]
        p = np.where((p >= 0) & (p < c), p, c)
        self._full += np.bincount(t * (c + 1) + p, minlength=c * (c + 1)).reshape(c, c + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        self._full += other._full
        self.out_of_range += other.out_of_range

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from both labels and predictions."""
        tp = np.diag(self.mat).astype(np.float64)
        union = self._full.sum(1) + self.mat.sum(0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        v = self.iou()
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.scored_pixels
        return float(np.trace(self.mat) / total) if total else float("nan")

    @property
    def scored_pixels(self) -> int:
        return int(self._full.sum())
