"""Class definitions: names, palette, ignore id, and the drivable/obstacle groups.

Kept free of torch and ROS so the node, the trainer and the evaluator share one source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IGNORE_LABEL = 255
"""Label value for 'not scored' in bags and metrics (a dataset's own ignore id is mapped to it)."""


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of semantic classes; a class id is its index in ``names``."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_id: int = IGNORE_LABEL
    drivable: tuple[str, ...] = field(default_factory=tuple)
    obstacles: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise ValueError(
                f"class file: {len(self.names)} names but {len(self.palette)} palette colours"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError("class file: class names must be unique")
        if not self.names:
            raise ValueError("class file: no classes")
        if len(self.names) > IGNORE_LABEL:  # ids are uint8 and IGNORE_LABEL is not a class
            raise ValueError(f"class file: {len(self.names)} classes; at most {IGNORE_LABEL} "
                             "fit 8-bit label images")
        for i, c in enumerate(self.palette):
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise ValueError(f"class file: palette colour {i} ({self.names[i]!r}) must be "
                                 f"three values in 0..255, got {list(c)}")
        if not len(self.names) <= self.ignore_id <= IGNORE_LABEL:
            # an ignore id inside 0..C-1 would take a class away from every label
            raise ValueError(f"class file: ignore_id {self.ignore_id} must lie outside the "
                             f"{len(self.names)} class ids, in {len(self.names)}..{IGNORE_LABEL}")
        for n in (*self.drivable, *self.obstacles):
            if n not in self.names:
                raise ValueError(f"class group names unknown class {n!r}; "
                                 f"known: {list(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def ids_of(self, names: list[str] | tuple[str, ...], what: str = "class") -> list[int]:
        """Class ids for names; unknown names raise with the list of valid ones."""
        out = []
        for n in names:
            if n not in self.names:
                raise ValueError(f"{what}: unknown class {n!r}; valid: {', '.join(self.names)}")
            out.append(self.names.index(n))
        return out

    def palette_array(self) -> np.ndarray:
        """(256, 3) uint8 lookup table; ids without a class map to black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return lut

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "palette": [list(c) for c in self.palette],
            "ignore_id": self.ignore_id,
            "drivable": list(self.drivable),
            "obstacles": list(self.obstacles),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassSet:
        try:
            return cls(
                names=tuple(str(n) for n in d["names"]),
                # why the ignore below: palette entries are RGB triples, checked in __post_init__
                palette=tuple(tuple(int(v) for v in c) for c in d["palette"]),  # type: ignore[misc]
                ignore_id=int(d.get("ignore_id", IGNORE_LABEL)),
                drivable=tuple(d.get("drivable", ())),
                obstacles=tuple(d.get("obstacles", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"class definition is malformed: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ClassSet:
        """Read a class file (JSON: names, palette, ignore_id, optional drivable/obstacles)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"class file not found: {p}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"class file {p} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


CAMVID = ClassSet(
    names=(
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
        "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    ),
    palette=(
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ),
    ignore_id=11,
    drivable=("Road",),
    obstacles=("Car", "Pedestrian", "Bicyclist", "Pole", "Fence", "SignSymbol"),
)
"""CamVid's 11-class SegNet version; id 11 is 'void'."""
