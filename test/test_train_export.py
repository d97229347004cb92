"""Training on a user dataset in CamVid layout (with its own class file), resume, export, parity."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import ROOT, camvid_root, needs_camvid
from seg_perception.cli import main as cli
from seg_perception.core.errors import TrainingError
from seg_perception.inference.modelinfo import read_model_info
from seg_perception.model.checkpoint import load_checkpoint, load_model
from seg_perception.optimize.export import export_onnx, parity
from seg_perception.training.train import autocast_dtype, train_one_epoch

CLASSES = {"names": ["sky", "road", "car"], "palette": [[0, 0, 255], [90, 90, 90], [255, 0, 0]],
           "ignore_id": 7, "drivable": ["road"], "obstacles": ["car"]}


def scene(rng: np.random.Generator, h: int = 64, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Sky over road with a red car somewhere; a strip of 'void' (ignore id 7) at the bottom."""
    horizon = int(rng.integers(h // 3, h // 2))
    img = np.zeros((h, w, 3), np.uint8)
    lab = np.zeros((h, w), np.uint8)
    img[:horizon] = (60, 120, 230)
    img[horizon:] = (95, 95, 95)
    lab[horizon:] = 1
    y, x = int(rng.integers(horizon, h - 16)), int(rng.integers(0, w - 20))
    img[y:y + 12, x:x + 20] = (220, 30, 30)
    lab[y:y + 12, x:x + 20] = 2
    lab[-3:] = 7
    noise = rng.normal(0, 8, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), lab


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 4)):
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for i in range(n):
            img, lab = scene(rng)
            cv2.imwrite(str(root / split / f"f{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / f"{split}annot" / f"f{i:03d}.png"), lab)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return root


def train(dataset, out, epochs, *extra):
    return cli(["train", "--data", str(dataset), "--out", str(out), "--epochs", str(epochs),
                "--batch-size", "4", "--crop", "48", "64", "--scale", "0.75", "1.25",
                "--widths", "8", "16", "24", "32", "--depth16", "2", "--lr", "0.01",
                "--warmup-epochs", "1", "--threads", "1", *extra])


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train(dataset, out, 12) == 0
    return out


def test_training_learns_a_user_dataset(trained):
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    epochs = [r for r in log if r["event"] == "epoch"]
    assert len(epochs) == 12
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert max(r["val_miou"] for r in epochs) > 0.6, [r["val_miou"] for r in epochs]
    start = log[0]
    assert start["recipe"]["seed"] == 0 and start["params"] > 0


def test_checkpoint_is_plain_data_with_metadata(trained):
    ck = load_checkpoint(trained / "best.pt")  # weights_only=True inside
    meta = ck["meta"]
    assert meta["classes"]["names"] == CLASSES["names"]
    assert meta["classes"]["ignore_id"] == 7
    assert meta["input_size"] == [64, 96]
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert "val_miou" in meta


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {}, "meta": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pt")


def test_resume_continues_where_it_stopped(dataset, tmp_path):
    assert train(dataset, tmp_path, 2) == 0
    assert train(dataset, tmp_path, 3, "--resume") == 0
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [0, 1, 2]
    assert [r["start_epoch"] for r in log if r["event"] == "start"] == [0, 2]


def test_init_starts_a_new_stage_from_earlier_weights(trained, dataset, tmp_path):
    """A warm restart: the first epoch starts where the earlier stage ended (its loss is far
    below a fresh start's), the schedule is new, and the metadata names the earlier stage."""
    assert train(dataset, tmp_path, 1, "--init", str(trained / "best.pt"), "--seed", "1") == 0
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    first = json.loads((trained / "train_log.jsonl").read_text().splitlines()[1])
    stage2 = [r for r in log if r["event"] == "epoch"]
    assert [r["epoch"] for r in stage2] == [0]
    assert stage2[0]["loss"] < 0.5 * first["loss"], (stage2[0]["loss"], first["loss"])
    meta = load_checkpoint(tmp_path / "best.pt")["meta"]
    earlier = meta["recipe"]["init_from"]
    assert earlier["path"] == str(trained / "best.pt")
    assert earlier["recipe"]["epochs"] == 12 and earlier["recipe"]["seed"] == 0
    assert meta["mean"] == load_checkpoint(trained / "best.pt")["meta"]["mean"]


def test_autocast_resolves_to_bf16_only_where_the_hardware_has_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("auto", cpu, has_bf16=lambda: False) is None
    assert autocast_dtype("auto", cpu, has_bf16=lambda: True) is torch.bfloat16
    assert autocast_dtype("auto", cuda, has_bf16=lambda: False) is torch.bfloat16
    assert autocast_dtype("bf16", cpu, has_bf16=lambda: False) is torch.bfloat16
    assert autocast_dtype("off", cuda, has_bf16=lambda: True) is None
    with pytest.raises(ValueError, match="--autocast"):
        autocast_dtype("fp16", cpu)


def test_bf16_autocast_trains_and_says_so(dataset, tmp_path):
    """Forced bf16 on any CPU (emulated where it lacks bf16 units): the loss falls, the weights
    stay fp32, and the recipe records the dtype it really trained in."""
    assert train(dataset, tmp_path, 3, "--autocast", "bf16") == 0
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "epoch"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["meta"]["recipe"]["autocast_dtype"] == "bfloat16"
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck["state_dict"].values())


def _tiny_step_parts():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return model, opt, sched, torch.nn.CrossEntropyLoss(ignore_index=255)


def _batch(bad: bool = False):
    x = torch.rand(2, 3, 8, 8)
    if bad:
        x[0, 0, 0, 0] = float("nan")  # one NaN pixel poisons the loss and every gradient
    return x, torch.randint(0, 4, (2, 8, 8))


def test_a_non_finite_step_is_skipped_and_counted():
    """One NaN batch must not turn every weight into NaN (and every later checkpoint with it):
    the step is skipped, the schedule still advances, the epoch says how many were skipped."""
    model, opt, sched, crit = _tiny_step_parts()
    res = train_one_epoch(model, crit, opt, sched, iter([_batch(), _batch()]), None,
                          torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = train_one_epoch(model, crit, opt, sched, iter([_batch(bad=True)]), None,
                          torch.device("cpu"))
    assert res.skipped == 1 and np.isnan(res.loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sched.last_epoch == 3
    res = train_one_epoch(model, crit, opt, sched, iter([_batch(), _batch(bad=True), _batch()]),
                          None, torch.device("cpu"))
    assert res.skipped == 1 and np.isfinite(res.loss)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_a_skipped_step_leaves_the_batch_norm_statistics_as_they_were():
    """The forward pass of a NaN batch moves BN's running mean and variance before the guard
    sees the loss; left there, the NaN would ship in the EMA, which averages buffers."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    crit = torch.nn.CrossEntropyLoss(ignore_index=255)
    bn = model[1]
    train_one_epoch(model, crit, opt, sched, iter([_batch()]), None, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = train_one_epoch(model, crit, opt, sched, iter([_batch(bad=True)]), None,
                          torch.device("cpu"))
    assert res.skipped == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert int(bn.num_batches_tracked) == 1
    train_one_epoch(model, crit, opt, sched, iter([_batch()]), None, torch.device("cpu"))
    assert not torch.equal(before["1.running_mean"], bn.running_mean)
    assert torch.isfinite(bn.running_var).all() and int(bn.num_batches_tracked) == 2


def test_the_run_of_non_finite_steps_spans_epochs():
    model, opt, sched, crit = _tiny_step_parts()
    res = train_one_epoch(model, crit, opt, sched, iter([_batch(bad=True)] * 2), None,
                          torch.device("cpu"), max_bad_steps=3)
    assert res.bad_run == 2
    with pytest.raises(TrainingError, match="3 steps in a row"):
        train_one_epoch(model, crit, opt, sched, iter([_batch(bad=True)]), None,
                        torch.device("cpu"), max_bad_steps=3, bad_run=res.bad_run)


def test_steps_non_finite_in_a_row_stop_the_run():
    model, opt, sched, crit = _tiny_step_parts()
    with pytest.raises(TrainingError, match="3 steps in a row.*try --autocast off"):
        train_one_epoch(model, crit, opt, sched, iter([_batch(bad=True)] * 4), None,
                        torch.device("cpu"), amp=torch.bfloat16, max_bad_steps=3)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_init_refuses_another_architecture(trained, dataset, tmp_path, capsys):
    rc = cli(["train", "--data", str(dataset), "--out", str(tmp_path), "--epochs", "1",
              "--widths", "8", "16", "24", "48", "--depth16", "2", "--threads", "1",
              "--init", str(trained / "best.pt")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "--init" in err and "arch_kwargs" in err, err


def test_export_metadata_and_parity(trained, dataset, tmp_path):
    path = export_onnx(trained / "best.pt", tmp_path / "toy.onnx", with_logits=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["labels", "confidence", "logits"]
    info = read_model_info(path)
    assert info.classes.names == ("sky", "road", "car")
    assert info.classes.drivable == ("road",)
    assert info.input_size == (64, 96)
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
              for p in sorted((dataset / "val").iterdir())]
    frames.append(np.zeros((50, 70, 3), np.uint8))  # any size: fully convolutional
    assert parity(trained / "best.pt", path, frames) >= 0.999


def test_export_cli_refuses_old_opset(trained, tmp_path):
    assert cli(["export", str(trained / "best.pt"), "-o", str(tmp_path / "x.onnx"),
                "--opset", "13"]) == 1


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert cli(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "image folder not found" in capsys.readouterr().err


@needs_camvid
def test_shipped_model_parity_on_camvid_frames(tmp_path):
    from seg_perception.inference.modelinfo import default_model_path

    onnx_path = default_model_path()
    ckpt = onnx_path.with_suffix(".pt")
    if not ckpt.is_file():
        pytest.skip("no bundled checkpoint")
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
              for p in sorted((camvid_root() / "val").iterdir())[:8]]
    assert parity(ckpt, onnx_path, frames) >= 0.999
    model, meta = load_model(ckpt)
    assert sum(p.numel() for p in model.parameters()) <= 1_200_000
    assert read_model_info(onnx_path).classes.names[3] == "Road"


def test_confidence_output_is_the_winning_probability(trained, tmp_path):
    """255 x the winning class's softmax probability (at the network's 1/4 resolution, enlarged
    like the logits), and the ids unchanged by its presence."""
    import onnxruntime as ort
    import torch.nn.functional as F

    from seg_perception.model.checkpoint import load_model

    path = export_onnx(trained / "best.pt", tmp_path / "conf.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    ids, conf = sess.run(["labels", "confidence"], {"image": x})
    model, _ = load_model(trained / "best.pt")
    with torch.no_grad():
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        small = model(t)
        prob = F.interpolate(torch.softmax(small, 1).amax(1, keepdim=True), size=(64, 96),
                             mode="bilinear", align_corners=False)[0, 0].numpy()
        ref_ids = F.interpolate(small, size=(64, 96), mode="bilinear",
                                align_corners=False).argmax(1)[0].numpy()
    assert conf.dtype == np.uint8 and conf.shape == (1, 64, 96)
    assert np.abs(conf[0].astype(int) - np.round(prob * 255)).max() <= 1
    assert (ids[0] == ref_ids).mean() >= 0.999
    assert conf.min() >= 255 // 3  # three classes: the winner has at least a third


def test_torchrun_two_cpu_processes(dataset, tmp_path):
    """DistributedDataParallel over gloo: one log and one set of checkpoints (rank 0), the
    loss goes down, metadata as a single process writes it, and resume works."""
    import os
    import subprocess
    import sys

    def torchrun(epochs: int, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(29500 + os.getpid() % 1000),
               "-m", "seg_perception", "train", "--data", str(dataset), "--out", str(tmp_path),
               "--epochs", str(epochs), "--batch-size", "2", "--crop", "48", "64",
               "--scale", "0.75", "1.25", "--widths", "8", "16", "24", "32", "--depth16", "2",
               "--lr", "0.01", "--warmup-epochs", "1", "--threads", "1", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    r = torchrun(6)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    starts = [e for e in log if e["event"] == "start"]
    epochs = [e for e in log if e["event"] == "epoch"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # rank 0 alone writes
    assert [e["epoch"] for e in epochs] == list(range(6))
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck["meta"]["classes"]["names"] == CLASSES["names"]
    assert not any(k.startswith("module.") for k in ck["state_dict"])  # the plain network
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "final.pt", "last.pt"]
    r = torchrun(7, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log if e["event"] == "epoch"] == list(range(7))


def test_shipped_model_follows_the_release_rules():
    """The bundled model: every stage of its schedule trained on train+val and picked on no
    split, at most 1.2 M parameters, and the three bundled files under 10 MB together."""
    from seg_perception.model.network import count_params

    engines = ROOT / "engines"
    stage = load_checkpoint(engines / "seglite_camvid.pt")["meta"]
    recipe = stage["recipe"]
    while recipe is not None:  # this stage, then the one its --init came from, and so on
        assert recipe["train_splits"] == ["train", "val"] and recipe["val_split"] == "none"
        assert stage["picked_on"] == "none (fixed schedule)"
        assert stage["epoch"] + 1 == recipe["epochs"], "a stage shipped before its schedule ended"
        stage = recipe.get("init_from") or {}
        recipe = stage.get("recipe")
    model, _ = load_model(engines / "seglite_camvid.pt")
    assert count_params(model) <= 1_200_000
    files = ["seglite_camvid.pt", "seglite_camvid.onnx", "seglite_camvid.int8.onnx"]
    assert sum((engines / f).stat().st_size for f in files) < 10_000_000
