"""``seg-perception train``: one readable loop, torchvision-reference style.

Random scale/crop/flip/colour jitter, ENet class weighting, AdamW with warm-up and poly decay,
bf16 autocast on CUDA, a progress bar with loss and val mIoU, ``last.pt`` every epoch (resumable)
and ``best.pt`` on val mIoU, and a JSON-lines log that records the recipe.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .classes import IGNORE_LABEL, ClassSet
from .data import Augment, class_weights, dataset_classes, load_split
from .metrics import ConfusionMatrix
from .model import ARCH_NAME, count_macs, count_params, model_from_meta


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data/camvid",
                   help="dataset root in CamVid layout (train/, trainannot/, val/, valannot/)")
    p.add_argument("--classes", help="class file (JSON); default: DATA/classes.json or CamVid")
    p.add_argument("--out", default="runs/train", help="output folder for checkpoints and log")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=(352, 352), metavar=("H", "W"))
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=3)
    p.add_argument("--widths", type=int, nargs=4, default=(16, 32, 64, 160))
    p.add_argument("--depth16", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--val-every", type=int, default=1)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return (1 - (step - warmup) / max(total - warmup, 1)) ** 0.9


def evaluate_model(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
                   num_classes: int, device: torch.device, batch: int = 4) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes)
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
    model.train()
    return cm


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    classes = ClassSet.load(args.classes) if args.classes else dataset_classes(args.data)
    t0 = time.time()
    x_train, y_train = load_split(args.data, "train", classes)
    x_val, y_val = load_split(args.data, "val", classes)
    mean = (x_train.reshape(-1, 3).mean(0)).tolist()
    std = (x_train.reshape(-1, 3).std(0)).tolist()
    weights = class_weights(y_train, classes.num_classes)
    meta = {
        "arch": ARCH_NAME,
        "arch_kwargs": {"widths": list(args.widths), "depth16": args.depth16},
        "classes": classes.to_dict(),
        "mean": mean, "std": std,
        "input_size": [int(x_val.shape[1]), int(x_val.shape[2])],
    }
    model = model_from_meta(meta).to(device).to(memory_format=torch.channels_last)
    params = count_params(model)
    macs = count_macs(model.net, *meta["input_size"])
    steps_per_epoch = len(x_train) // args.batch_size
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_factor(s, args.warmup_epochs * steps_per_epoch, total))
    crit = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights).to(device),
                                     ignore_index=IGNORE_LABEL)
    start_epoch, best, step = 0, -1.0, 0
    if args.resume and (out / "last.pt").is_file():
        ck = load_checkpoint(out / "last.pt", str(device))
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, best = int(ck["epoch"]) + 1, float(ck["best_miou"])
        step = start_epoch * steps_per_epoch
    recipe = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if k not in ("func",)}
    meta["recipe"] = recipe
    log = (out / "train_log.jsonl").open("a")
    log.write(json.dumps({"event": "start", "recipe": recipe, "params": params,
                          "macs_480x360": macs, "class_weights": weights.tolist(),
                          "train_frames": len(x_train), "val_frames": len(x_val),
                          "device": str(device), "torch": torch.__version__,
                          "start_epoch": start_epoch, "load_s": round(time.time() - t0, 1)}) + "\n")
    log.flush()
    aug = Augment(tuple(args.crop), tuple(args.scale), seed=args.seed + start_epoch)
    rng = np.random.default_rng(args.seed + start_epoch)
    amp = device.type == "cuda"
    bar = tqdm(range(start_epoch, args.epochs), desc="train", initial=start_epoch,
               total=args.epochs, unit="epoch", dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30.0)
    miou = float("nan")
    for epoch in bar:
        model.train()
        order = rng.permutation(len(x_train))
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            pairs = [aug(x_train[i], y_train[i]) for i in idx]
            x = torch.from_numpy(np.stack([p[0] for p in pairs])).to(device)
            y = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device).long()
            x = x.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
                logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                       align_corners=False)
                loss = crit(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", miou=f"{miou:.3f}", best=f"{best:.3f}",
                            refresh=False)
        rec = {"event": "epoch", "epoch": epoch, "loss": float(np.mean(losses)),
               "lr": sched.get_last_lr()[0], "elapsed_s": round(time.time() - t0, 1)}
        if (epoch + 1) % args.val_every == 0 or epoch + 1 == args.epochs:
            cm = evaluate_model(model, x_val, y_val, classes.num_classes, device)
            miou = cm.miou()
            rec.update(val_miou=miou, val_pixel_acc=cm.pixel_accuracy(),
                       val_iou=[round(float(v), 4) for v in cm.iou()])
            if miou > best:
                best = miou
                save_checkpoint(out / "best.pt", model, {**meta, "epoch": epoch, "val_miou": miou})
        bar.set_postfix(loss=f"{rec['loss']:.3f}", miou=f"{miou:.3f}", best=f"{best:.3f}")
        save_checkpoint(out / "last.pt", model, {**meta, "epoch": epoch},
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        epoch=epoch, best_miou=best)
        log.write(json.dumps(rec) + "\n")
        log.flush()
    log.write(json.dumps({"event": "done", "best_val_miou": best,
                          "elapsed_s": round(time.time() - t0, 1)}) + "\n")
    log.close()
    print(f"best val mIoU {best:.4f}; checkpoints in {out}")
    return 0 if math.isfinite(best) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seg-perception train", description=__doc__)
    add_args(p)
    return run(p.parse_args(argv))
