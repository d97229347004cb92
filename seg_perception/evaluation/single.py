"""One bag, offline or live: the run, then metrics.json and report.md, whatever happened."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from seg_perception.evaluation.config import EvalConfig, choose_overlays
from seg_perception.evaluation.inputs import open_bag, resolve_topics
from seg_perception.evaluation.offline import run_offline
from seg_perception.evaluation.replay import run_live
from seg_perception.evaluation.report import write_report
from seg_perception.evaluation.tally import Tally, build_metrics
from seg_perception.evaluation.views import planner_views
from seg_perception.inference.backend import Backend
from seg_perception.inference.modelinfo import read_model_info


def evaluate(cfg: EvalConfig, backend: Backend | None = None,
             on_tally: Callable[[Tally], None] | None = None) -> dict:
    """Runs the evaluation and writes metrics.json and report.md into ``cfg.out``, even when it
    is interrupted or fails part-way (then ``complete`` is false and the error is recorded).

    ``backend``: an already open backend for offline mode, used and left open (a fleet worker
    opens one for all its bags). ``on_tally``: called with the run's Tally as soon as it exists,
    so a caller still has the raw latencies when the run fails part-way.
    """
    model = Path(cfg.model).resolve()
    info = read_model_info(model)  # the classes, without loading a runtime
    reader = open_bag(cfg.bag)
    try:
        bag = resolve_topics(reader, Path(cfg.bag), cfg.image_topic, cfg.label_topic)
        n_images = bag.image_count if not cfg.max_frames else min(bag.image_count, cfg.max_frames)
        tally = Tally(info.classes, choose_overlays(n_images, cfg.overlays))
        if on_tally is not None:
            on_tally(tally)
        cfg.out.mkdir(parents=True, exist_ok=True)
        state: dict = {"backend": cfg.backend, "precision": cfg.precision, "fps": None,
                       "extra": {}}
        error: str | None = None
        complete = False
        try:
            if cfg.live:
                run_live(cfg, reader, bag, tally, state)
            else:
                run_offline(cfg, reader, bag, tally, state, backend)
            complete = True
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise
        finally:
            metrics = build_metrics(
                tally, mode="live" if cfg.live else "offline", bag=bag, bag_path=Path(cfg.bag),
                backend=state["backend"], precision=state["precision"], model=model,
                fps=state["fps"], complete=complete, error=error, extra=state["extra"])
            (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            try:
                shown = sorted(tally.overlays.values(), key=lambda o: o.index)
                planner_views(model, shown, threads=cfg.threads,
                              backend=None if cfg.live else backend)
                write_report(cfg.out, metrics, tally.cm.mat, tally.latencies_ms, info.classes,
                             shown)
            except Exception as rexc:  # noqa: BLE001 - never hide the error that stopped the run
                if error is None:
                    raise
                print(f"warning: report.md not written: {rexc}", file=sys.stderr)
    finally:
        reader.close()
    return metrics
