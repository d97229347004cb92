"""report.md and its pictures from one evaluation: the numbers a reader checks first, then where
the model confuses classes, how latency is spread, and what the masks look like.

Matplotlib runs headless (Agg); pictures are PNG next to report.md so the folder is self-contained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from seg_perception.core.classes import IGNORE_LABEL, ClassSet
from seg_perception.core.masks import apply_lut, overlay

ALPHA = 0.5


class OverlaySource(Protocol):
    index: int
    stamp: int
    rgb: np.ndarray
    pred: np.ndarray | None
    label: np.ndarray | None


def _plt():  # noqa: ANN202 - matplotlib.pyplot, imported late and headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def plot_iou(path: Path, per_class: dict[str, float | None], miou: float | None,
             classes: ClassSet) -> None:
    """Horizontal bars in each class's palette colour, with the mIoU as a dashed line."""
    plt = _plt()
    names = list(per_class)
    vals = np.array([np.nan if per_class[n] is None else per_class[n] for n in names], float)
    colours = [np.asarray(classes.palette[classes.names.index(n)]) / 255.0
               if n in classes.names else (0.5, 0.5, 0.5) for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.38 * len(names) + 1.2), dpi=110)
    y = np.arange(len(names))
    ax.barh(y, np.nan_to_num(vals), color=colours, edgecolor="black", linewidth=0.5)
    for yi, v in zip(y, vals, strict=True):
        ax.text((0 if np.isnan(v) else v) + 0.01, yi, "n/a" if np.isnan(v) else f"{v:.3f}",
                va="center", fontsize=8)
    if miou is not None:
        ax.axvline(miou, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("IoU")
    ax.set_title("Per-class IoU" + ("" if miou is None else f" (dashed: mIoU {miou:.3f})"))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(path: Path, cm: np.ndarray, names: Sequence[str]) -> None:
    """Rows (ground truth) normalised to 1, so rare classes are as readable as common ones."""
    plt = _plt()
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, cm / np.maximum(rows, 1), np.nan)
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 2.0), dpi=110)
    im = ax.imshow(np.nan_to_num(norm), cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            v = norm[i, j]
            if np.isfinite(v) and v >= 0.005:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (% of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(path: Path, latencies_ms: Sequence[float], summary: dict, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=110)
    a = np.asarray(latencies_ms, np.float64)
    if a.size:
        ax.hist(a, bins=min(50, max(10, a.size // 3)), color="#4c72b0", edgecolor="white")
        for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            if summary.get(key) is not None:
                ax.axvline(summary[key], color="black", linestyle=style, linewidth=1,
                           label=f"{key} {summary[key]:.1f} ms")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no frames measured", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def overlay_picture(frame: OverlaySource, classes: ClassSet) -> np.ndarray:
    """Camera frame | prediction overlay | ground-truth overlay (unlabelled pixels left as
    they are), side by side, RGB."""
    lut = classes.palette_array()
    rgb = np.ascontiguousarray(frame.rgb)
    panels = [rgb]
    titles = ["camera"]
    if frame.pred is not None and frame.pred.shape == rgb.shape[:2]:
        panels.append(overlay(rgb, apply_lut(frame.pred, lut), ALPHA))
        titles.append("prediction")
    if frame.label is not None and frame.label.shape == rgb.shape[:2]:
        gt = overlay(rgb, apply_lut(frame.label, lut), ALPHA)
        gt[frame.label == IGNORE_LABEL] = rgb[frame.label == IGNORE_LABEL]
        panels.append(gt)
        titles.append("ground truth")
    conf = getattr(frame, "confidence", None)
    if conf is not None:
        c = cv2.resize(conf, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        panels.append(cv2.cvtColor(cv2.applyColorMap(c, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB))
        titles.append("confidence")
    grid = getattr(frame, "grid", None)
    if grid is not None:
        panels.append(grid_picture(grid, rgb.shape[0]))
        titles.append("grid (flat ground)")
    out = []
    for p, t in zip(panels, titles, strict=True):
        p = p.copy()
        scale = max(p.shape[0] / 360.0, 0.4)
        cv2.putText(p, t, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                    (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        out.append(p)
    return np.concatenate(out, axis=1)


GRID_COLOURS = {-1: (40, 40, 40), 0: (90, 200, 90), 100: (230, 40, 40)}


def grid_picture(cells: np.ndarray, height: int) -> np.ndarray:
    """An OccupancyGrid as a person reads a map: forward (x) up, left (y) to the left; free
    green, occupied red, unknown dark; the camera at the bottom centre."""
    img = np.zeros((*cells.shape, 3), np.uint8)
    for v, colour in GRID_COLOURS.items():
        img[cells == v] = colour
    img = img.transpose(1, 0, 2)[::-1, ::-1]  # rows: x far -> near; columns: y left -> right
    scale = height / img.shape[0]
    return cv2.resize(np.ascontiguousarray(img), (max(int(img.shape[1] * scale), 1), height),
                      interpolation=cv2.INTER_NEAREST)


def _md_table(rows: list[tuple[str, str]], head: tuple[str, str]) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "| --- | ---: |"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return lines


def write_report(out: Path, metrics: dict, cm: np.ndarray, latencies_ms: Sequence[float],
                 classes: ClassSet, overlays: Sequence[OverlaySource]) -> Path:
    """report.md plus iou.png, confusion.png, latency.png and overlays/*.png in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lat = metrics["latency_ms"]
    live = metrics.get("mode") == "live"
    plot_iou(out / "iou.png", metrics["per_class_iou"], metrics["miou"], classes)
    plot_confusion(out / "confusion.png", cm, list(classes.names))
    plot_latency(out / "latency.png", latencies_ms, lat,
                 "Publish-to-mask latency through the node" if live
                 else "Per-frame inference latency (resize + backend + resize back)")
    ov_dir = out / "overlays"
    ov_dir.mkdir(exist_ok=True)
    for old in ov_dir.glob("frame_*.png"):
        old.unlink()
    ov_files = []
    for f in overlays:
        name = f"frame_{f.index:05d}.png"
        cv2.imwrite(str(ov_dir / name), cv2.cvtColor(overlay_picture(f, classes),
                                                     cv2.COLOR_RGB2BGR))
        ov_files.append((f, name))

    L: list[str] = ["# Segmentation evaluation", ""]
    if not metrics.get("complete", True):
        L += [f"> **Incomplete run**: {metrics.get('error')}. The figures cover what was "
              "measured before it stopped.", ""]
    L += [f"- bag: `{metrics['bag']}` (images `{metrics.get('image_topic')}`, labels "
          f"`{metrics.get('label_topic')}`)",
          f"- model: `{metrics['model']}`",
          f"- backend: {metrics['backend']}, precision {metrics['precision']}",
          "- mode: " + ("live, replayed through the ROS 2 node; latency is from publishing a "
                        "frame to receiving its mask" if live else
                        "offline, backend called directly; latency is per-frame inference"), ""]
    rows = _score_rows(metrics, "") + [
        ("images without a label", str(metrics.get("images_without_label", 0))),
        ("latency p50 / p95 / p99 / max (ms)", _percentiles(lat)),
        ("throughput (fps)", _fmt(metrics["fps"], ".1f")),
    ]
    if live and metrics.get("rate_hz"):
        rows.append((f"replay rate (Hz, {metrics.get('rate_source', 'recorded')})",
                     f"{metrics['rate_hz']:g}"))
    nc = metrics.get("node_counters") or {}
    if live and nc:
        rows.append(("node's own count: received / published / dropped / lost",
                     " / ".join(str(nc.get(k, "?")) for k in
                                ("received", "published", "dropped", "lost"))))
    rows += _defect_rows(metrics)
    L += ["## Summary", ""] + _md_table(rows, ("metric", "value")) + [""]
    L += ["mIoU is computed from one confusion matrix over all scored pixels (label 255 is not "
          "scored); classes absent from both labels and predictions are left out of the mean.",
          ""]
    L += ["## Per-class IoU", ""]
    L += _md_table([(n, _fmt(v)) for n, v in metrics["per_class_iou"].items()],
                   ("class", "IoU"))
    L += ["", "![per-class IoU](iou.png)", "", "## Confusion matrix", "",
          "Rows are ground truth, normalised to 100%; columns are predictions.", "",
          "![confusion matrix](confusion.png)", "", "## Latency", "",
          "![latency histogram](latency.png)", ""]
    if ov_files:
        L += ["## Overlays", "", "Camera frame, prediction and ground truth (palette colours "
              "at 50%; unlabelled pixels left uncoloured), the model's confidence (bright = "
              "certain) and the flat-ground occupancy grid the node publishes (forward up; "
              "green drivable, red an obstacle's ground contact, dark unknown; drawn with an "
              "assumed camera: CamVid publishes no calibration).", ""]
        for f, name in ov_files:
            L += [f"Frame {f.index} (stamp {f.stamp / 1e9:.3f} s)"
                  + ("" if f.pred is not None else " - no mask received"), "",
                  f"![frame {f.index}](overlays/{name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(L))
    return path


def _score_rows(metrics: dict, qualifier: str) -> list[tuple[str, str]]:
    """The rows a bag's report and a fleet's report share: scores and frame counts."""
    return [(f"mIoU{qualifier}", _fmt(metrics["miou"])),
            (f"pixel accuracy{qualifier}", _fmt(metrics["pixel_accuracy"])),
            ("frames", str(metrics["frames"])),
            ("frames scored", str(metrics["frames_scored"])),
            ("dropped (no mask)", str(metrics["dropped"])),
            ("labels without a matching image", str(metrics.get("labels_without_image", 0)))]


def _percentiles(lat: dict) -> str:
    return " / ".join(_fmt(lat[k], ".1f") for k in ("p50", "p95", "p99", "max"))


def _defect_rows(metrics: dict) -> list[tuple[str, str]]:
    """Counts of malformed input, shown only where there was some."""
    return [(what, str(metrics[key])) for key, what in (
        ("bad_frames", "undecodable images"), ("bad_labels", "undecodable labels"),
        ("size_mismatch", "prediction/label size mismatches"),
        ("duplicate_image_stamps", "duplicate image stamps")) if metrics.get(key)]


def _md_grid(head: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one letter per column, l (left) or r (right)."""
    lines = ["| " + " | ".join(head) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _cell(text: object) -> str:
    """One table cell: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_fleet_report(out: Path, metrics: dict, cm: np.ndarray, latencies_ms: Sequence[float],
                       classes: ClassSet) -> Path:
    """report.md for a fleet of bags: pooled figures (one confusion matrix summed over every
    bag, mIoU recomputed from it), then one row per bag linking its own report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lat = metrics["latency_ms"]
    live = metrics.get("mode") == "live"
    bags = metrics.get("bags", [])
    plot_iou(out / "iou.png", metrics["per_class_iou"], metrics["miou"], classes)
    plot_confusion(out / "confusion.png", cm, list(classes.names))
    plot_latency(out / "latency.png", latencies_ms, lat,
                 ("Publish-to-mask latency through the node" if live
                  else "Per-frame inference latency") + f", all {len(bags)} bags")
    failed = [b for b in bags if b["status"] != "ok"]
    L: list[str] = ["# Segmentation evaluation: fleet of bags", ""]
    if failed:
        L += [f"> **{len(failed)} of {len(bags)} bags did not complete**: "
              + "; ".join(f"`{b['name']}`: {b['error']}" for b in failed)
              + ". The pooled figures cover what the others measured (and what a bag that "
              "stopped part-way measured before it stopped).", ""]
    timing = metrics.get("timing", {})
    L += [f"- bags: {len(bags)} ({metrics.get('bags_ok', 0)} complete), model "
          f"`{metrics['model']}`",
          f"- backend: {metrics['backend']}, precision {metrics['precision']}; mode: "
          + ("live, each bag replayed through its worker's own ROS 2 node" if live
             else "offline, backend called directly"),
          f"- {metrics.get('workers', '?')} Dask workers ({metrics.get('cluster', 'local')}); "
          f"bags evaluated in {_fmt(timing.get('bags_s'), '.1f')} s after "
          f"{_fmt(timing.get('cluster_start_s'), '.1f')} s of Dask start-up and "
          f"{_fmt(timing.get('workers_start_s'), '.1f')} s of worker start-up", ""]
    rows = _score_rows(metrics, " (pooled)") + [
        ("latency p50 / p95 / p99 / max (ms)", _percentiles(lat)),
        ("per-worker fps" if not live else "output fps (frame-weighted over bags)",
         _fmt(metrics["fps"], ".1f")),
        ("fleet throughput (frames/s, all workers, reports included)",
         _fmt(metrics.get("throughput_fps"), ".1f")),
    ]
    rows += _defect_rows(metrics)
    L += ["## Pooled over all bags", ""] + _md_table(rows, ("metric", "value")) + [""]
    L += ["The confusion matrices of the bags are summed and mIoU is computed from the sum, so "
          "every scored pixel weighs the same whichever bag it is in (not a mean of per-bag "
          "mIoUs). Latency percentiles are over every frame of every bag.", ""]
    L += ["## Per bag", ""]
    grid = []
    for b in bags:
        name = _cell(b["name"])
        link = f"[{name}]({b['report']})" if b.get("report") else name
        status = "ok" if b["status"] == "ok" else f"{b['status']}: {_cell(b['error'])}"
        grid.append([link, str(b["frames"]), str(b["frames_scored"]), _fmt(b["miou"]),
                     _fmt(b["latency_p50_ms"], ".1f"), _fmt(b["latency_p95_ms"], ".1f"),
                     _fmt(b["fps"], ".1f"), str(b["dropped"]), status])
    L += _md_grid(("bag", "frames", "scored", "mIoU", "p50 ms", "p95 ms", "fps", "dropped",
                   "status"), grid, "lrrrrrrrl")
    L += ["", "## Per-class IoU (pooled)", ""]
    L += _md_table([(n, _fmt(v)) for n, v in metrics["per_class_iou"].items()],
                   ("class", "IoU"))
    L += ["", "![per-class IoU](iou.png)", "", "## Confusion matrix (pooled)", "",
          "Rows are ground truth, normalised to 100%; columns are predictions.", "",
          "![confusion matrix](confusion.png)", "", "## Latency (pooled)", "",
          "![latency histogram](latency.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(L))
    return path


def write_failed_report(out: Path, bag: str, error: str) -> Path:
    """report.md for a bag of a fleet that stopped before anything was measured, so every bag
    has its own folder with a report that says what happened."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(["# Segmentation evaluation", "",
                               f"> **Failed before any frame was measured**: {error}", "",
                               f"- bag: `{bag}`", ""]))
    return path
