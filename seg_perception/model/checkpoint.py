"""Checkpoint files: a state dict plus plain metadata, loaded with ``weights_only=True`` so a
checkpoint can never run code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seg_perception.core.classes import ClassSet
from seg_perception.core.fileio import atomic_write
from seg_perception.model.network import Normalized, model_from_meta

META_KEYS = ("arch", "arch_kwargs", "classes", "mean", "std", "input_size")


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"checkpoint {p} cannot be loaded safely: {exc}") from exc
    if not isinstance(ck, dict) or "state_dict" not in ck or "meta" not in ck:
        raise ValueError(f"{p} is not a seg_perception checkpoint (needs 'state_dict' and 'meta')")
    missing = [k for k in META_KEYS if k not in ck["meta"]]
    if missing:
        raise ValueError(f"checkpoint {p} metadata lacks {missing}")
    return ck


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[Normalized, dict[str, Any]]:
    """The model in eval mode and its metadata."""
    ck = load_checkpoint(path, map_location)
    model = model_from_meta(ck["meta"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck["meta"]


def classes_of(meta: dict[str, Any]) -> ClassSet:
    return ClassSet.from_dict(meta["classes"])


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict[str, Any],
                    **extra: Any) -> None:
    """Atomic write: a crash mid-save never leaves a truncated checkpoint behind."""
    atomic_write(path, lambda tmp: torch.save(
        {"state_dict": model.state_dict(), "meta": meta, **extra}, tmp))
