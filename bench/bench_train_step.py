"""Training step time, fp32 against bf16 autocast, through ``train_one_epoch`` itself.

Interleaved rounds (fp32, bf16, fp32, ...) so the machine's drift hits both alike; prints each
round's median step and the ratio. Says whether this CPU has native bf16 (what
``--autocast auto`` looks at), so the numbers come with the reason for the default.

    python bench/bench_train_step.py [--model engines/seglite_camvid.pt] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator

import torch

from seg_perception.model.checkpoint import load_model
from seg_perception.training.train import cpu_has_bf16, train_one_epoch


def step_ms(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
            y: torch.Tensor, steps: int, amp: torch.dtype | None) -> list[float]:
    """Per-step times of ``steps`` steps of the real training loop (no EMA)."""
    times: list[float] = []
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    crit = torch.nn.CrossEntropyLoss()

    def data() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        t = time.perf_counter()
        for _ in range(steps):
            yield x, y
            times.append((time.perf_counter() - t) * 1000.0)
            t = time.perf_counter()

    train_one_epoch(model, crit, opt, sched, data(), None, torch.device("cpu"), amp=amp)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="engines/seglite_camvid.pt")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=(352, 352), metavar=("H", "W"))
    p.add_argument("--steps", type=int, default=3, help="steps per round and mode")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load_model(args.model)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, *args.crop, generator=g) * 255.0
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(meta["classes"]["names"]), (args.batch, *args.crop), generator=g)
    print(f"native bf16 on this CPU: {cpu_has_bf16()}; batch {args.batch} at "
          f"{args.crop[0]}x{args.crop[1]}, {args.threads} threads, channels_last")
    modes: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
    for amp in modes.values():  # warm-up
        step_ms(model, opt, x, y, 1, amp)
    rounds: dict[str, list[float]] = {k: [] for k in modes}
    for r in range(args.rounds):
        for name, amp in modes.items():
            rounds[name].append(statistics.median(step_ms(model, opt, x, y, args.steps, amp)))
        print(f"round {r + 1}: fp32 {rounds['fp32'][-1]:.0f} ms, bf16 {rounds['bf16'][-1]:.0f} ms")
    f, b = statistics.median(rounds["fp32"]), statistics.median(rounds["bf16"])
    print(f"median step: fp32 {f:.0f} ms, bf16 {b:.0f} ms, bf16/fp32 {b / f:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
