"""``seg-perception demo`` (``make demo``): the bundled CamVid sample replayed live through the
node with the bundled model on the CPU, so a new user sees the whole path (bag -> ROS 2 -> node
-> masks -> scores) work in under a minute, with a report to open afterwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seg_perception.evaluation.evaluate import EvalConfig, evaluate, summary_line
from seg_perception.inference.backend import BACKENDS, PRECISIONS
from seg_perception.inference.modelinfo import default_model_path, package_share

SAMPLE_NAME = "camvid_sample"


def sample_bag_path() -> Path:
    """data/camvid_sample in the source tree, or under share/ after a colcon install."""
    return package_share() / "data" / SAMPLE_NAME


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="output folder (default: demo_output)")
    parser.add_argument("--bag", type=Path, default=None,
                        help="bag to replay (default: the bundled CamVid sample)")
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX model (default: the bundled engines/seglite_camvid.onnx)")
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None,
                        help="frames per second (default: the bag's recorded rate)")


def run(args: argparse.Namespace) -> int:
    bag = args.bag or sample_bag_path()
    model = args.model or default_model_path()
    if not Path(bag).exists():
        raise FileNotFoundError(f"sample bag not found: {bag}")
    if not Path(model).is_file():
        raise FileNotFoundError(f"model not found: {model} (export one with `seg-perception "
                                "export CHECKPOINT -o engines/seglite_camvid.onnx`)")
    t0 = time.monotonic()
    cfg = EvalConfig(bag=Path(bag), out=Path(args.out), model=Path(model), backend=args.backend,
                     precision=args.precision, threads=args.threads, live=True, rate=args.rate)
    m = evaluate(cfg)
    took = time.monotonic() - t0
    hz = m.get("rate_hz")
    rate = f"{hz:g} Hz" if hz else "its recorded rate"
    print(f"\nseg-perception demo: {m['frames']} CamVid frames from {Path(bag).name} replayed "
          f"live at {rate} through the segmentation node on the CPU ({took:.1f} s)")
    print("  " + summary_line(m))
    print(f"  report: {cfg.out / 'report.md'}  metrics: {cfg.out / 'metrics.json'}  "
          f"overlays: {cfg.out / 'overlays'}/")
    return 0
