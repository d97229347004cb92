"""``seg-perception evaluate``: how well and how fast frames from a bag are segmented.

Offline mode runs the backend on every image of the bag. ``--live`` starts the real node, replays
the bag into it over ROS 2 and scores what it publishes on ``/segmentation/mask``, so the figures
include transport, the node's own overhead and the frames it drops. Predictions and labels are
paired by header stamp. Whatever happens, ``DIR/metrics.json`` and ``DIR/report.md`` describe what
was measured up to that point (``complete: false`` and ``error`` when cut short). Several bags
(``--bag`` repeated, ``--bags``) make a fleet run (``evaluation.fleet``).

This module is the command's face; the parts live beside it: ``config`` (the run's settings),
``inputs`` (bag topics and messages), ``tally`` (pairing and metrics), ``offline`` and ``replay``
(the two modes), ``single`` (one bag, start to report), ``fleet`` (many bags).
"""

from __future__ import annotations

import argparse

from seg_perception.evaluation.config import EvalConfig, add_args, config_from_args, is_fleet
from seg_perception.evaluation.fleet import run_fleet
from seg_perception.evaluation.single import evaluate
from seg_perception.evaluation.tally import summary_line

__all__ = ["EvalConfig", "add_args", "evaluate", "run", "summary_line"]


def run(args: argparse.Namespace) -> int:
    if is_fleet(args):
        return run_fleet(args)
    if not args.bag:
        raise ValueError("give a bag: --bag PATH (repeatable) or --bags DIR_OR_GLOB")
    cfg = config_from_args(args)
    m = evaluate(cfg)
    print(summary_line(m))
    print(f"wrote {cfg.out / 'metrics.json'} and {cfg.out / 'report.md'}")
    return 0
