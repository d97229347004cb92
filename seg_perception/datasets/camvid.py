"""Datasets in CamVid layout (``train/``, ``trainannot/``, ``val/``, ``valannot/``), augmentation.

Everything is NumPy and OpenCV so the same reader feeds training, INT8 calibration and make-bag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.classes import CAMVID, IGNORE_LABEL, ClassSet
from seg_perception.datasets import photometric as ph

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
CLASS_FILE = "classes.json"


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path, classes: ClassSet) -> np.ndarray:
    """Reads a label PNG (8 or 16 bit) and maps the dataset's ignore id and unknown ids to 255
    (before narrowing to uint8, so a 16-bit id cannot wrap into a class)."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise ValueError(f"cannot read label {path}")
    if lab.ndim != 2:
        raise ValueError(f"label {path} must be a single-channel id image, got shape {lab.shape}")
    unknown = (lab == classes.ignore_id) | (lab >= classes.num_classes)
    return np.where(unknown, IGNORE_LABEL, lab).astype(np.uint8)


def list_images(folder: str | Path) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise FileNotFoundError(f"image folder not found: {p}")
    return sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def dataset_classes(root: str | Path) -> ClassSet:
    """A dataset's ``classes.json`` if it has one, else CamVid's 11 classes."""
    f = Path(root) / CLASS_FILE
    return ClassSet.load(f) if f.is_file() else CAMVID


@dataclass
class Split:
    images: list[Path]
    labels: list[Path]


def find_split(root: str | Path, split: str) -> Split:
    """Pairs ``root/split/X`` with ``root/splitannot/X`` by file stem."""
    root = Path(root)
    imgs = list_images(root / split)
    ann_dir = root / f"{split}annot"
    labels = {f.stem: f for f in list_images(ann_dir)}
    missing = [i.name for i in imgs if i.stem not in labels]
    if missing:
        raise ValueError(f"{len(missing)} images in {root / split} have no label in {ann_dir}, "
                         f"e.g. {missing[:3]}")
    if not imgs:
        raise ValueError(f"no images in {root / split}")
    return Split(imgs, [labels[i.stem] for i in imgs])


def load_split(root: str | Path, split: str, classes: ClassSet) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a split in memory (CamVid train is ~190 MB): a 2-core box can't afford
    decoding PNGs every epoch."""
    s = find_split(root, split)
    images = [read_rgb(p) for p in s.images]
    labels = [read_label(p, classes) for p in s.labels]
    shapes = {i.shape[:2] for i in images}
    if len(shapes) != 1:
        raise ValueError(f"{root}/{split}: frames must share one size, found {sorted(shapes)}")
    for p, i, lab in zip(s.images, images, labels, strict=True):
        if lab.shape != i.shape[:2]:
            raise ValueError(f"label for {p.name} is {lab.shape}, image is {i.shape[:2]}")
    return np.stack(images), np.stack(labels)


def class_weights(labels: np.ndarray, num_classes: int, c: float = 1.02) -> np.ndarray:
    """ENet's 1/ln(c + p) weighting: lifts rare classes without the extreme ratios of
    median-frequency weights."""
    counts = np.bincount(labels[labels != IGNORE_LABEL].ravel(), minlength=num_classes)
    p = counts[:num_classes] / max(counts.sum(), 1)
    return (1.0 / np.log(c + p)).astype(np.float32)


class Augment:
    """Random scale, crop (padding with ignore), horizontal flip and photometric change.

    The photometric part is wide on purpose: the frames a deployed model meets come from other
    drives, cameras and light (dusk, overcast, colour casts, soft focus, sensor noise) than the
    few drives it was trained on.
    """

    def __init__(self, crop: tuple[int, int], scale: tuple[float, float] = (0.5, 2.0),
                 jitter: float = 0.3, seed: int = 0, photometric: str = "basic") -> None:
        if photometric not in PHOTOMETRIC:
            raise ValueError(f"photometric must be one of {', '.join(PHOTOMETRIC)}")
        self.crop_h, self.crop_w = crop
        self.scale = scale
        self.jitter = jitter
        self.photometric = photometric
        self.rng = np.random.default_rng(seed)

    def __call__(self, img: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.rng
        s = r.uniform(*self.scale)
        h, w = lab.shape
        nh, nw = max(int(h * s + 0.5), 8), max(int(w * s + 0.5), 8)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
        ph, pw = max(self.crop_h - nh, 0), max(self.crop_w - nw, 0)
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            lab = cv2.copyMakeBorder(lab, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_LABEL)
        y = r.integers(0, lab.shape[0] - self.crop_h + 1)
        x = r.integers(0, lab.shape[1] - self.crop_w + 1)
        img = img[y:y + self.crop_h, x:x + self.crop_w]
        lab = lab[y:y + self.crop_h, x:x + self.crop_w]
        if r.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        if self.jitter > 0:
            img = self._colour(img)
        if self.photometric == "strong":
            img = self._camera(img)
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)

    def _colour(self, img: np.ndarray) -> np.ndarray:
        r, j = self.rng, self.jitter
        f = img.astype(np.float32)
        f = ph.brightness(f, r.uniform(1 - j, 1 + j))
        f = ph.contrast(f, r.uniform(1 - j, 1 + j))
        f = ph.saturation(f, r.uniform(1 - j, 1 + j))
        if self.photometric == "strong":
            f = ph.colour_cast(f, r.uniform(0.85, 1.15, size=3))  # white balance / colour cast
            f = ph.gamma(f, r.uniform(0.7, 1.4))  # dusk and overexposed streets
        return ph.to_uint8(f)

    def _camera(self, img: np.ndarray) -> np.ndarray:
        """Optics and sensor: occasional blur, and noise."""
        r = self.rng
        if r.random() < 0.2:
            img = ph.blur(img, r.uniform(0.3, 1.2))
        if r.random() < 0.3:
            img = ph.noise(img, r.uniform(2.0, 8.0), r)
        return img


PHOTOMETRIC = ("basic", "strong")
"""``basic``: brightness, contrast, saturation; ``strong`` adds colour cast, gamma, blur, noise."""
