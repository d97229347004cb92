"""A cross-drive split of a CamVid-layout dataset: one drive held out of train+val.

Val shares its drive with most training frames, so it cannot say how a recipe does on streets
it has never seen. Holding out a whole drive (CamVid names frames ``<drive>_<frame>.png``) and
scoring it every epoch is the nearest stand-in this machine has for the held-out test split.
The split is made of symlinks (the data's licence forbids copies in the project):

    python bench/cross_drive.py --data ../shared/data/camvid --drive 0001TP --out runs/x_0001TP
    seg-perception train --data runs/x_0001TP/data --train-splits train --val-split val \\
        --val-every 1 ...            # the recipe under study, unchanged otherwise
    python bench/cross_drive.py --curve runs/x_0001TP/s1/train_log.jsonl [more stages ...]
    python bench/cross_drive.py --run baseline s1.jsonl s2.jsonl --run wider c1.jsonl \\
        --plot runs/x_0001TP/curves.png   # runs side by side, one line each, stages joined
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SPLITS = ("train", "val")


def drive_of(name: str) -> str:
    return name.split("_", 1)[0]


def make_split(data: Path, drive: str, out: Path) -> tuple[int, int]:
    """Links train+val frames of other drives into ``out/train``, the drive's into ``out/val``;
    returns the two counts. Refuses a drive the data does not have."""
    frames = [(split, p.name) for split in SPLITS for p in sorted((data / split).glob("*.png"))]
    if not any(drive_of(n) == drive for _, n in frames):
        drives = sorted({drive_of(n) for _, n in frames})
        raise SystemExit(f"error: no frame of drive {drive!r} in {data} (drives: {drives})")
    counts = {"train": 0, "val": 0}
    for split, name in frames:
        dest = "val" if drive_of(name) == drive else "train"
        for sub, suffix in ((split, ""), (split + "annot", "annot")):
            link = out / (dest + suffix) / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to((data / sub / name).resolve())
        counts[dest] += 1
    classes = data / "classes.json"
    if classes.is_file():
        (out / "classes.json").write_bytes(classes.read_bytes())
    return counts["train"], counts["val"]


def curve(logs: list[Path]) -> list[tuple[int, float]]:
    """(epoch over all stages, held-out-drive mIoU) from ``train`` logs, stage after stage."""
    points: list[tuple[int, float]] = []
    for log in logs:
        recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        base = points[-1][0] if points else 0
        points += [(base + r["epoch"] + 1, r["val_miou"]) for r in recs
                   if r.get("event") == "epoch" and "val_miou" in r]
    return points


def plot(runs: list[list[str]], out: Path) -> None:
    """One held-out curve per run (NAME LOG [LOG ...]); the picture people compare runs by."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, *logs in runs:
        points = curve([Path(log) for log in logs])
        if not points:
            raise SystemExit(f"error: no epoch with val_miou in the logs of run {name!r}")
        ax.plot([e for e, _ in points], [100 * m for _, m in points],
                label=f"{name} (last {100 * points[-1][1]:.1f})")
    ax.set_xlabel("epoch (stages joined)")
    ax.set_ylabel("held-out-drive mIoU (EMA weights)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="dataset root (train/, trainannot/, val/, valannot/)")
    p.add_argument("--drive", help="drive to hold out, e.g. 0001TP")
    p.add_argument("--out", type=Path, help="folder for the split (OUT/data)")
    p.add_argument("--curve", type=Path, nargs="+", help="print the held-out curve of these logs")
    p.add_argument("--run", nargs="+", action="append", metavar="NAME_THEN_LOGS",
                   help="a run to plot: its name, then its stages' logs (repeat per run)")
    p.add_argument("--plot", type=Path, help="PNG of the --run curves")
    args = p.parse_args(argv)
    if args.plot or args.run:
        if not (args.plot and args.run) or any(len(r) < 2 for r in args.run):
            p.error("--plot needs --run NAME LOG [LOG ...] at least once")
        plot(args.run, args.plot)
        print(f"wrote {args.plot}")
        return 0
    if args.curve:
        points = curve(args.curve)
        if not points:
            print("error: no epoch with val_miou in these logs", file=sys.stderr)
            return 1
        for epoch, miou in points:
            if epoch % 10 == 0 or epoch == points[-1][0]:
                print(f"epoch {epoch:4d}  held-out-drive mIoU {100 * miou:6.2f}")
        best = max(points, key=lambda x: x[1])
        print(f"last {100 * points[-1][1]:.2f} at epoch {points[-1][0]}; "
              f"best {100 * best[1]:.2f} at epoch {best[0]} (for the curve's shape, not to pick)")
        return 0
    if not (args.data and args.drive and args.out):
        p.error("--data, --drive and --out make a split; --curve reads logs")
    n_train, n_val = make_split(args.data, args.drive, args.out / "data")
    print(f"{args.out / 'data'}: train {n_train} frames (other drives), val {n_val} ({args.drive})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
