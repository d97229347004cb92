"""Training loss and learning rate per epoch, over the stages of a multi-stage schedule.

Each log is one stage's ``train_log.jsonl`` (``seg-perception train``), in order; a stage that
started with ``--init`` continues the epoch axis of the one before it.

    python bench/plot_training.py STAGE1.jsonl [STAGE2.jsonl ...] -o curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend


def read_epochs(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("event") == "epoch"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="+", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args(argv)
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    ax2 = ax.twinx()
    offset = 0
    for i, log in enumerate(args.logs):
        epochs = read_epochs(log)
        if not epochs:
            print(f"error: {log} has no epoch records", file=sys.stderr)
            return 1
        x = [offset + r["epoch"] + 1 for r in epochs]
        ax.plot(x, [r["loss"] for r in epochs], color=f"C{i}", label=f"stage {i + 1} loss")
        ax2.plot(x, [r["lr"] for r in epochs], color=f"C{i}", ls=":", lw=1)
        if "val_miou" in epochs[0]:
            ax.plot(x, [r["val_miou"] for r in epochs], color=f"C{i}", ls="--",
                    label=f"stage {i + 1} val mIoU")
        offset = x[-1]
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("training loss (weighted cross-entropy)")
    ax.set_yscale("log")
    ax2.set_ylabel("learning rate (dotted)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
