"""``seg-perception train``, in torchvision-reference steps: ``train_one_epoch``, ``run``.

Random scale/crop/flip and photometric augmentation, ENet class weighting, AdamW with warm-up and
poly decay, an exponential moving average of the weights (what gets shipped), bf16 autocast
where the hardware computes in bf16 (CUDA, or a CPU with AVX-512 BF16 or AMX), a progress bar,
``last.pt`` every epoch (resumable), and a JSON-lines log with the recipe.

Two ways to pick the shipped weights: with a held-out ``--val-split``, ``best.pt`` is the best
epoch on it (a study); training on every labelled split (``--train-splits train val
--val-split none``) runs a schedule fixed in advance and ships ``final.pt``, the last epoch, which
no split had a say in.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from seg_perception.core.classes import IGNORE_LABEL, ClassSet
from seg_perception.core.errors import TrainingError
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.datasets.camvid import (
    PHOTOMETRIC,
    Augment,
    class_weights,
    dataset_classes,
    load_split,
)
from seg_perception.model.checkpoint import load_checkpoint, save_checkpoint
from seg_perception.model.network import ARCH_NAME, count_macs, count_params, model_from_meta


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data/camvid",
                   help="dataset root in CamVid layout (train/, trainannot/, val/, valannot/)")
    p.add_argument("--classes", help="class file (JSON); default: DATA/classes.json or CamVid")
    p.add_argument("--out", default="runs/train", help="output folder for checkpoints and log")
    p.add_argument("--train-splits", nargs="+", default=["train"], metavar="SPLIT",
                   help="splits to train on, e.g. 'train val' for the final model")
    p.add_argument("--val-split", default="val",
                   help="split scored every epoch for best.pt, or 'none' (ship final.pt)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=(352, 352), metavar=("H", "W"))
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    p.add_argument("--photometric", choices=PHOTOMETRIC, default="basic",
                   help="basic: brightness/contrast/saturation; strong: also colour cast, gamma, "
                        "blur, noise")
    p.add_argument("--class-weight-c", type=float, default=1.02,
                   help="ENet class weight 1/ln(c + p); larger c flattens the weights")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=3)
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay of a per-step weight average that is evaluated and shipped "
                        "(0: off; 0.999 averages about the last thousand steps)")
    p.add_argument("--widths", type=int, nargs=4, default=(16, 32, 64, 160))
    p.add_argument("--depth16", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--autocast", choices=AUTOCAST, default="auto",
                   help="bf16 autocast: auto (on CUDA and on CPUs with native bf16), bf16, off")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start a new schedule from these weights (a warm restart: a further "
                        "stage of a fixed multi-stage schedule); the architecture must match")
    p.add_argument("--val-every", type=int, default=1)


AUTOCAST = ("auto", "bf16", "off")


def cpu_has_bf16() -> bool:
    """Native bf16 matrix units: without them bf16 is emulated on the CPU and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, name, lambda: False)())
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def autocast_dtype(choice: str, device: torch.device,
                   has_bf16: Callable[[], bool] = cpu_has_bf16) -> torch.dtype | None:
    """The dtype ``--autocast`` resolves to on ``device`` (None: train in fp32)."""
    if choice not in AUTOCAST:
        raise ValueError(f"--autocast must be one of {', '.join(AUTOCAST)}, got {choice!r}")
    if choice == "off":
        return None
    if choice == "bf16" or device.type == "cuda" or (device.type == "cpu" and has_bf16()):
        return torch.bfloat16
    return None


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(1 - (step - warmup) / max(total - warmup, 1), 0.0) ** 0.9


def evaluate_model(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
                   num_classes: int, device: torch.device, batch: int = 4) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes)
    was = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).to(device).permute(0, 3, 1, 2).float()
            logits = model(x.contiguous(memory_format=torch.channels_last))
            logits = F.interpolate(logits.float(), size=x.shape[-2:], mode="bilinear",
                                   align_corners=False)
            pred = logits.argmax(1).cpu().numpy()
            for p, t in zip(pred, labels[i:i + batch], strict=True):
                cm.update(p, t)
    model.train(was)
    return cm


def batches(images: np.ndarray, labels: np.ndarray, aug: Augment, batch_size: int,
            rng: np.random.Generator, device: torch.device, rank: int = 0,
            world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of augmented batches in a fresh random order (the last partial batch dropped).

    With several processes every rank draws the same order (same seed) and takes every
    ``world``-th frame from ``rank`` on, as DistributedSampler does: disjoint shards per epoch.
    """
    order = rng.permutation(len(images))[rank::world]
    for b in range(len(order) // batch_size):
        idx = order[b * batch_size:(b + 1) * batch_size]
        pairs = [aug(images[i], labels[i]) for i in idx]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).to(device)
        y = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device).long()
        yield x.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last), y


MAX_BAD_STEPS = 5  # non-finite steps in a row before a run stops


@dataclass
class EpochResult:
    """An epoch's mean loss over the steps taken, and the steps skipped as non-finite."""

    loss: float
    skipped: int = 0
    bad_run: int = 0  # non-finite steps in a row at the epoch's end (the next epoch goes on)


def train_one_epoch(model: torch.nn.Module, crit: torch.nn.Module,
                    opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                    data: Iterator[tuple[torch.Tensor, torch.Tensor]],
                    ema: AveragedModel | None, device: torch.device,
                    on_step: Any = None, amp: torch.dtype | None = None,
                    max_bad_steps: int = MAX_BAD_STEPS, bad_run: int = 0) -> EpochResult:
    """One pass over ``data``; ``amp`` is the autocast dtype (None: fp32).

    A step whose loss or gradients are not finite is skipped (weights, buffers, EMA and
    optimiser state untouched; the schedule still advances, so the run's length stays fixed):
    one such step would otherwise turn every weight into NaN and every later checkpoint with it.
    Its forward pass has already moved the batch-norm running statistics, so they are put back:
    a NaN there would survive the guard and ship in the EMA (which averages buffers).
    ``max_bad_steps`` in a row raise ``TrainingError``.
    """
    model.train()
    losses: list[float] = []
    skipped = 0
    buffers = list(model.buffers())
    for step, (x, y) in enumerate(data):
        saved = [b.clone() for b in buffers]
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits = model(x)
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                   align_corners=False)
            loss = crit(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        # backward always: under DDP every rank must join the gradient all-reduce, which
        # carries one rank's NaN to all, so all of them skip the step together.
        loss.backward()
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        finite = bool(torch.isfinite(loss)) and \
            bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        if finite:
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
            bad_run = 0
        else:
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for b, v in zip(buffers, saved, strict=True):
                    b.copy_(v)
            skipped += 1
            bad_run += 1
            if bad_run >= max_bad_steps:
                raise TrainingError(
                    f"training diverged: {bad_run} steps in a row with a non-finite loss or "
                    f"gradient (the last at step {step} of this epoch, autocast "
                    f"{'fp32' if amp is None else str(amp).removeprefix('torch.')}); the "
                    "checkpoints already written are untouched"
                    + (" (try --autocast off)" if amp is not None else ""))
        with warnings.catch_warnings():  # a skipped first step is meant, not a misordering
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            sched.step()
        if on_step is not None and losses:
            on_step(float(np.mean(losses)))
    return EpochResult(float(np.mean(losses)) if losses else float("nan"), skipped, bad_run)


class _Log:
    """The JSON-lines log; a no-op on ranks other than 0."""

    def __init__(self, path: Path | None) -> None:
        self._f = path.open("a") if path is not None else None

    def write(self, rec: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(rec) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def _load_splits(root: str, splits: list[str],
                 classes: ClassSet) -> tuple[np.ndarray, np.ndarray]:
    parts = [load_split(root, s, classes) for s in splits]
    sizes = {p[0].shape[1:3] for p in parts}
    if len(sizes) != 1:
        raise ValueError(f"splits {splits} have different frame sizes: {sorted(sizes)}")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Distributed:
    """torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK), or a single process.

    gloo on the CPU, nccl on CUDA; only rank 0 writes checkpoints, logs and the progress bar.
    """

    def __init__(self, device: torch.device) -> None:
        import os

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = device
        if self.world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
                self.device = torch.device("cuda", self.local_rank)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP (gradients averaged over ranks); BatchNorm synchronised on CUDA, where each
        GPU's batch is small. PyTorch's SyncBatchNorm runs on GPUs only, so on the CPU each
        process normalises over its own batch."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DDP(model, device_ids=[self.local_rank])
        return DDP(model)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    dist = Distributed(device)
    try:
        return _run(args, dist)
    finally:
        dist.close()


@dataclass
class Data:
    """The frames a run trains (and perhaps validates) on, and what the checkpoint records."""

    classes: ClassSet
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    weights: np.ndarray  # class weights of the loss, from the training frames
    meta: dict[str, Any]  # checkpoint metadata (architecture, classes, normalisation, size)
    init: dict[str, Any] | None = None  # the --init checkpoint, checked against ``meta``


def load_data(args: argparse.Namespace, val_split: str | None) -> Data:
    classes = ClassSet.load(args.classes) if args.classes else dataset_classes(args.data)
    x_train, y_train = _load_splits(args.data, list(args.train_splits), classes)
    x_val, y_val = load_split(args.data, val_split, classes) if val_split else (None, None)
    meta: dict[str, Any] = {
        "arch": ARCH_NAME,
        "arch_kwargs": {"widths": list(args.widths), "depth16": args.depth16},
        "classes": classes.to_dict(),
        "mean": x_train.reshape(-1, 3).mean(0).tolist(),
        "std": x_train.reshape(-1, 3).std(0).tolist(),
        "input_size": [int(x_train.shape[1]), int(x_train.shape[2])],
    }
    weights = class_weights(y_train, classes.num_classes, args.class_weight_c)
    init = _load_init(args.init, meta) if args.init else None
    if init is not None:  # the weights carry their normalisation: the metadata must agree
        meta["mean"], meta["std"] = init["meta"]["mean"], init["meta"]["std"]
    return Data(classes, x_train, y_train, x_val, y_val, weights, meta, init)


def _load_init(path: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The --init checkpoint, if its network and classes are this run's."""
    ck = load_checkpoint(path)
    for key in ("arch", "arch_kwargs", "classes", "input_size"):
        if ck["meta"][key] != meta[key]:
            raise ValueError(f"--init {path}: its {key} {ck['meta'][key]!r} is not this run's "
                             f"{meta[key]!r}")
    return ck


@dataclass
class Trainee:
    """The network and everything that steps it; ``shipped`` is what checkpoints hold."""

    model: torch.nn.Module  # the plain network (DDP's module when wrapped)
    trained: torch.nn.Module  # what the optimiser steps (DDP wrapper or the model)
    ema: AveragedModel | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    start_epoch: int = 0
    best: float = -1.0

    @property
    def shipped(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model


def build_trainee(args: argparse.Namespace, data: Data, dist: Distributed,
                  steps_per_epoch: int, resume: Path | None) -> Trainee:
    """Model, EMA, optimiser and schedule; restored from ``resume`` (a last.pt) if given."""
    device = dist.device
    model: torch.nn.Module = model_from_meta(data.meta).to(device)
    # Module.to takes memory_format at run time (documented); torch's stubs lack it.
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ck = load_checkpoint(resume, str(device)) if resume is not None else None
    if ck is not None:  # weights before DDP broadcasts rank 0's
        model.load_state_dict(ck["train_state_dict"] if "train_state_dict" in ck
                              else ck["state_dict"])
    elif data.init is not None:  # the EMA below starts from these weights too
        model.load_state_dict(data.init["state_dict"])
    trained = dist.wrap(model)
    # SyncBN conversion copies the network: the plain one is DDP's ``module``.
    model = cast(torch.nn.Module, trained.module) if trained is not model else model
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
           if args.ema > 0 else None)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(trained.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_factor(s, args.warmup_epochs * steps_per_epoch, total))
    t = Trainee(model, trained, ema, opt, sched)
    if ck is not None:
        if ema is not None and "ema" in ck:
            ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        t.start_epoch, t.best = int(ck["epoch"]) + 1, float(ck["best_miou"])
    return t


def save_epoch(out: Path, t: Trainee, meta: dict[str, Any], epoch: int, last: bool) -> None:
    """last.pt (everything to resume) every epoch; final.pt, of the fixed schedule, at the end."""
    save_checkpoint(out / "last.pt", t.shipped, {**meta, "epoch": epoch},
                    train_state_dict=t.model.state_dict(),
                    ema=None if t.ema is None else t.ema.state_dict(),
                    optimizer=t.opt.state_dict(), scheduler=t.sched.state_dict(),
                    epoch=epoch, best_miou=t.best)
    if last:
        save_checkpoint(out / "final.pt", t.shipped, {**meta, "epoch": epoch,
                                                      "picked_on": "none (fixed schedule)"})


def _run(args: argparse.Namespace, dist: Distributed) -> int:
    device = dist.device
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0.0 <= args.ema < 1.0:
        raise ValueError(f"--ema must be in [0, 1), got {args.ema}")
    amp = autocast_dtype(args.autocast, device)
    val_split = None if args.val_split.lower() == "none" else args.val_split
    if val_split in args.train_splits:
        raise ValueError(f"--val-split {val_split!r} is also a training split: picking a "
                         "checkpoint on it would be meaningless; use --val-split none")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    data = load_data(args, val_split)
    steps_per_epoch = (len(data.x_train) // dist.world) // args.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(data.x_train)} frames")
    resume = out / "last.pt" if args.resume and (out / "last.pt").is_file() else None
    t = build_trainee(args, data, dist, steps_per_epoch, resume)
    crit = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(data.weights).to(device),
                                     ignore_index=IGNORE_LABEL)
    recipe = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if k not in ("func",)}
    recipe["autocast_dtype"] = "fp32" if amp is None else str(amp).removeprefix("torch.")
    recipe["command"] = "seg-perception train " + " ".join(sys.argv[2:] if len(sys.argv) > 2
                                                           else [])
    if data.init is not None:  # the earlier stages, so the shipped file names its whole schedule
        init_meta = data.init["meta"]
        recipe["init_from"] = {"path": str(args.init), "epoch": init_meta.get("epoch"),
                               "picked_on": init_meta.get("picked_on"),
                               "recipe": init_meta.get("recipe")}
    meta = {**data.meta, "recipe": recipe}
    log = _Log(out / "train_log.jsonl" if dist.main else None)
    log.write({"event": "start", "recipe": recipe, "params": count_params(t.model),
               "macs_480x360": count_macs(cast(torch.nn.Module, t.model.net),
                                          *meta["input_size"]),
               "class_weights": data.weights.tolist(), "train_frames": len(data.x_train),
               "val_frames": 0 if data.x_val is None else len(data.x_val),
               "device": str(device), "torch": torch.__version__, "world_size": dist.world,
               "start_epoch": t.start_epoch, "load_s": round(time.time() - t0, 1)})
    # Each rank augments differently; the frame order is shared (see ``batches``).
    aug = Augment(tuple(args.crop), tuple(args.scale),
                  seed=args.seed + t.start_epoch + 1000 * dist.rank,
                  photometric=args.photometric)
    rng = np.random.default_rng(args.seed + t.start_epoch)
    bar = tqdm(range(t.start_epoch, args.epochs), desc="train", initial=t.start_epoch,
               total=args.epochs, unit="epoch", dynamic_ncols=True, disable=not dist.main,
               mininterval=0.5 if sys.stderr.isatty() else 30.0)
    miou = float("nan")

    def on_step(loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.3f}", miou=f"{miou:.3f}", best=f"{t.best:.3f}",
                        refresh=False)

    bad_run = 0
    for epoch in bar:
        res = train_one_epoch(t.trained, crit, t.opt, t.sched,
                              batches(data.x_train, data.y_train, aug, args.batch_size, rng,
                                      device, dist.rank, dist.world),
                              t.ema, device, on_step, amp, bad_run=bad_run)
        loss, bad_run = res.loss, res.bad_run
        rec: dict[str, Any] = {"event": "epoch", "epoch": epoch, "loss": loss,
                               "skipped_steps": res.skipped,
                               "lr": t.sched.get_last_lr()[0],
                               "elapsed_s": round(time.time() - t0, 1)}
        last = epoch + 1 == args.epochs
        if not dist.main:
            dist.barrier()  # rank 0 evaluates and writes; the others wait for it
            continue
        if data.x_val is not None and data.y_val is not None and (
                (epoch + 1) % args.val_every == 0 or last):
            cm = evaluate_model(t.shipped, data.x_val, data.y_val, data.classes.num_classes,
                                device)
            miou = cm.miou()
            rec.update(val_miou=miou, val_pixel_acc=cm.pixel_accuracy(),
                       val_iou=[round(float(v), 4) for v in cm.iou()])
            if miou > t.best:
                t.best = miou
                save_checkpoint(out / "best.pt", t.shipped,
                                {**meta, "epoch": epoch, "val_miou": miou})
        on_step(loss)
        save_epoch(out, t, meta, epoch, last)
        log.write(rec)
        dist.barrier()
    log.write({"event": "done", "best_val_miou": t.best,
               "elapsed_s": round(time.time() - t0, 1)})
    log.close()
    if not dist.main:
        return 0
    if data.x_val is None:
        print(f"final weights in {out / 'final.pt'} (no split was used to pick them)")
        return 0
    print(f"best val mIoU {t.best:.4f}; checkpoints in {out}")
    return 0 if math.isfinite(t.best) else 1
