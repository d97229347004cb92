"""Does the model input's aspect ratio matter for a 16:9 camera? Measured on CamVid val.

Each val frame (480x360) is centre-cropped to 16:9 (480x270), enlarged to 1920x1080 like a wide
camera's frame, and segmented through the node's own path (shrink, infer, ids back) at several
``input_size`` values; mIoU is scored on the crop's labels. Prints a table; no pass/fail.

  python bench/aspect_camvid.py [--data ../shared/data/camvid]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_perception.core.metrics import ConfusionMatrix  # noqa: E402
from seg_perception.datasets.camvid import read_label, read_rgb  # noqa: E402
from seg_perception.inference.factory import create_backend  # noqa: E402
from seg_perception.inference.modelinfo import default_model_path  # noqa: E402
from seg_perception.inference.segmenter import Segmenter  # noqa: E402

SIZES = {"480x360 (stretched)": (360, 480), "480x270 (aspect kept)": (270, 480),
         "640x360 (aspect kept, 1.33x scale)": (360, 640)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "camvid")
    p.add_argument("--model", default=str(default_model_path()))
    a = p.parse_args()
    images = sorted((a.data / "val").glob("*.png"))
    if not images:
        sys.exit(f"no CamVid val images under {a.data / 'val'}")
    backend = create_backend(a.model, "onnxruntime")
    n = backend.info.classes.num_classes
    print(f"{'model input':>36} {'mIoU':>6}")
    for name, size in SIZES.items():
        seg = Segmenter(backend, size)
        cm = ConfusionMatrix(n)
        for path in tqdm(images, desc=name, leave=False):
            rgb = read_rgb(path)
            label = read_label(a.data / "valannot" / path.name, backend.info.classes)
            h, w = label.shape
            ch = w * 9 // 16
            y0 = (h - ch) // 2
            rgb, label = rgb[y0:y0 + ch], label[y0:y0 + ch]
            wide = cv2.resize(rgb, (1920, 1080), interpolation=cv2.INTER_LINEAR)
            pred = cv2.resize(seg.predict(wide), (w, ch), interpolation=cv2.INTER_NEAREST)
            cm.update(pred, label)
        print(f"{name:>36} {100 * cm.miou():>6.2f}", flush=True)


if __name__ == "__main__":
    main()
