"""Synthetic CamVid-layout folders and small bags for the bag/evaluate/demo tests, so they run on
a fresh clone without the dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.classes import CAMVID
from seg_perception.datasets.bag import pair_folders, write_bag

START_NS = 1_700_000_000_000_000_000


def make_dataset(root: Path, n: int = 6, size: tuple[int, int] = (96, 128), seed: int = 0,
                 split: str = "val") -> Path:
    """``root/split`` RGB PNGs and ``root/splitannot`` label PNGs: blocky class layouts with
    void (11) borders, and images coloured from the layout plus noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    pal = np.asarray(CAMVID.palette, np.uint8)
    for i in range(n):
        blocks = rng.integers(0, 11, size=(4, 4), dtype=np.uint8)
        lab = cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)
        lab[:2, :] = 11  # void rows: must become 255 in the bag
        rgb = pal[np.minimum(lab, 10)].astype(np.int16) + rng.integers(-20, 21, (h, w, 3))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / split / f"f{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / f"{split}annot" / f"f{i:03d}.png"), lab)
    return root


def make_bag(tmp: Path, name: str = "bag", n: int = 6, **kw: object) -> Path:
    ds = make_dataset(tmp / f"{name}_data", n=n)
    out = tmp / name
    write_bag(pair_folders(ds / "val", ds / "valannot"), out, classes=CAMVID, start_ns=START_NS,
              progress=False, **kw)  # type: ignore[arg-type]
    return out
