"""``seg-perception`` / ``python -m seg_perception``: one command line, one module per subcommand.

Each subcommand module is imported only when chosen, so ``--help`` and light commands never pay
for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from seg_perception.core.logs import print_to_stderr

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("seg_perception.training.train", "train the FCN on a CamVid-layout dataset"),
    "export": ("seg_perception.optimize.export",
               "export a checkpoint to ONNX (uint8 in, class ids out)"),
    "build-engine": ("seg_perception.optimize.build_engine",
                     "build a TensorRT engine (fp32/fp16/int8)"),
    "make-bag": ("seg_perception.datasets.bag", "write a rosbag2 from image and label folders"),
    "evaluate": ("seg_perception.evaluation.evaluate",
                 "replay a bag and measure accuracy and latency"),
    "demo": ("seg_perception.demo", "replay the bundled sample bag live through the node"),
    "doctor": ("seg_perception.doctor", "check TensorRT, CUDA, GPU and engines on this machine"),
}


def _usage() -> str:
    lines = ["usage: seg-perception COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<14}{help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "seg-perception COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"seg-perception: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # The package logs through stdlib logging (core.logs): a command prints its info lines.
    print_to_stderr()
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"seg-perception {name}",
                                     description=COMMANDS[name][1])
    module.add_args(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"seg-perception {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
