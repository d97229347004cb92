"""What one evaluation run is asked to do: ``EvalConfig``, from the command line or from code."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_perception.datasets.bag import COMPRESSED_SUFFIX, IMAGE_TOPIC, LABEL_TOPIC
from seg_perception.inference.backend import BACKENDS, PRECISIONS
from seg_perception.inference.modelinfo import default_model_path

MASK_TOPIC = "/segmentation/mask"


@dataclass
class EvalConfig:
    bag: Path
    out: Path
    model: Path
    image_topic: str = IMAGE_TOPIC
    label_topic: str = LABEL_TOPIC
    backend: str = "auto"
    precision: str = "fp32"
    threads: int = 2
    live: bool = False
    rate: float | None = None  # Hz; None: the recorded timing
    max_frames: int = 0
    overlays: int = 4
    qos_reliability: str = "best_effort"
    grace_s: float = 2.0
    startup_timeout_s: float = 60.0
    fastdds_profile: Path | None = None
    domain_id: int | None = None
    progress: bool = True


def choose_overlays(n_images: int, k: int) -> set[int]:
    """k frame indices spread over the bag (first, last and evenly between)."""
    if n_images <= 0 or k <= 0:
        return set()
    return {int(round(v)) for v in np.linspace(0, n_images - 1, min(k, n_images))}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", type=Path, action="append", default=[],
                        help="rosbag2 folder (mcap or sqlite3); repeat it for a fleet of bags")
    parser.add_argument("--bags", default=None, metavar="DIR_OR_GLOB",
                        help="a fleet: every rosbag2 folder (one with metadata.yaml) under DIR, "
                             "or those a glob matches; combinable with --bag")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for metrics.json, report.md and pictures (a fleet: the "
                             "pooled report, and each bag's own in bags/NAME/)")
    parser.add_argument("--image-topic", default=IMAGE_TOPIC,
                        help=f"Image or CompressedImage topic (default {IMAGE_TOPIC}; "
                             f"TOPIC{COMPRESSED_SUFFIX} is used if only that exists)")
    parser.add_argument("--label-topic", default=LABEL_TOPIC,
                        help=f"mono8 class-id Image topic (default {LABEL_TOPIC})")
    parser.add_argument("--model", type=Path, default=None,
                        help="seg_perception ONNX (default: the bundled model)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="as the node's backend parameter (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--threads", type=int, default=None,
                        help="inference threads (default 2; a fleet: the cores per worker)")
    parser.add_argument("--live", action="store_true",
                        help="replay through the real ROS 2 node and score what it publishes")
    parser.add_argument("--rate", type=float, default=None,
                        help="live: publish at this many frames per second instead of the "
                             "recorded timing")
    parser.add_argument("--qos-reliability", choices=("reliable", "best_effort"),
                        default="best_effort",
                        help="live: the node's image subscription QoS (default: best_effort, "
                             "the node's own default)")
    parser.add_argument("--grace", type=float, default=2.0,
                        help="live: seconds to wait for masks after the last frame")
    parser.add_argument("--startup-timeout", type=float, default=60.0,
                        help="live: seconds to wait for the node to be ready")
    parser.add_argument("--fastdds-profile", type=Path, default=None,
                        help="live: Fast DDS profile XML (default: $FASTDDS_DEFAULT_PROFILES_FILE, "
                             "else the shipped config/fastdds_shm.xml)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="live: ROS_DOMAIN_ID for the replay (default: inherited)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N images (0: all)")
    parser.add_argument("--overlays", type=int, default=4, help="overlay frames in the report")
    fleet = parser.add_argument_group("fleet (several bags, in parallel on Dask workers)")
    fleet.add_argument("--workers", type=int, default=None,
                       help="Dask worker processes, each evaluating whole bags with its own "
                            "backend (and live: its own node on ROS_DOMAIN_ID base + worker "
                            "index); default: the CPU cores here (with --scheduler-address: "
                            "all its workers), at most one per bag")
    fleet.add_argument("--scheduler-address", default=None, metavar="ADDR",
                       help="use the workers of this Dask scheduler (e.g. tcp://head:8786) "
                            "instead of starting a local cluster; the project, the bags, the "
                            "model and --out must be at the same paths on its workers")
    fleet.add_argument("--gpus-per-worker", type=float, default=None,
                       help="GPUs per worker (default: the GPUs shared out, at most 1 each; 0 "
                            "where there are none): here through each worker's "
                            "CUDA_VISIBLE_DEVICES, on a scheduler's workers their Dask "
                            "resource GPU (dask worker --resources GPU=1)")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    threads = 2 if args.threads is None else args.threads
    if args.max_frames < 0 or args.overlays < 0 or threads < 1:
        raise ValueError("--max-frames and --overlays must be >= 0, --threads >= 1")
    if args.rate is not None and not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    bags = args.bag if isinstance(args.bag, list) else [args.bag]
    if len(bags) != 1:
        raise ValueError(f"one --bag expected here, got {len(bags)}")
    return EvalConfig(
        bag=bags[0], out=args.out, model=args.model or default_model_path(),
        image_topic=args.image_topic, label_topic=args.label_topic, backend=args.backend,
        precision=args.precision, threads=threads, live=args.live, rate=args.rate,
        max_frames=args.max_frames, overlays=args.overlays, qos_reliability=args.qos_reliability,
        grace_s=args.grace, startup_timeout_s=args.startup_timeout,
        fastdds_profile=args.fastdds_profile, domain_id=args.domain_id)


def is_fleet(args: argparse.Namespace) -> bool:
    """A fleet run: ``--bags``, or ``--bag`` given more than once. One ``--bag`` is the
    single-bag run, with its output layout unchanged."""
    bags = args.bag if isinstance(args.bag, list) else [args.bag]
    return getattr(args, "bags", None) is not None or len(bags) > 1
