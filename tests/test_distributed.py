"""Scale-out: `torchrun --nproc_per_node=2` runs of `classify` and `gan train` on CPU (gloo).

The launched runs go through tests/torchrun_probe.py, the CLI plus a probe that saves every
rank's parameters after each epoch. Checked: the runs finish, the ranks hold identical weights,
the classifier matches a one-process run with the same global batch (see test_classify_ddp for
the batch-norm caveat), and an interrupted run resumes to the uninterrupted result.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, make_imageset
from ganaug.classify import _start, to_input
from ganaug.config import load_config
from ganaug.data import write_npz
from ganaug.runtime import (
    DistInfo,
    all_finite,
    all_reduce_mean_grads,
    barrier,
    dist_info,
    init_distributed,
    is_main,
    safe_torch_load,
)

PROBE = REPO / "tests" / "torchrun_probe.py"
CLASSIFY_SETS = [
    "classify.budget=epochs",  # the reference below replays epoch shuffles
    "classify.epochs=2",
    "classify.batch_size=16",  # global batch: 8 images per rank, 4 steps per epoch
    "classify.lr=1e-3",
    "runtime.threads=1",
]
GAN_SETS = [
    "gan.mode=conditional",
    "gan.loss=wgan-gp",  # the penalty's autograd.grad is why the GAN runs without DDP
    "gan.width=16",
    "gan.batch_size=8",
    "gan.epochs_lr1=2",
    "gan.epochs_lr2=0",
    "gan.ckpt_every=1",
    "runtime.threads=1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list, probe: Path, stop_after: int = 0) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 tests/torchrun_probe.py ARGS` on a free port."""
    probe.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PROBE_DIR=str(probe), PROBE_STOP_AFTER=str(stop_after), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += [f"--master_port={free_port()}", str(PROBE), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def rank_params(probe: Path, epoch: int) -> tuple[dict, dict]:
    return tuple(safe_torch_load(probe / f"rank{r}_epoch{epoch}.pt") for r in (0, 1))


def assert_same(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=atol), key


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dist") / "tiny64.npz"
    write_npz(path, make_imageset(n=64, size=16))
    return path


# ---------------------------------------------------------------------------------------------
# one process: the helpers are no-ops and nothing joins a job


def test_one_process_needs_no_launcher(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert dist_info() == DistInfo(rank=0, world=1, local_rank=0)
    assert init_distributed(torch.device("cpu")) == torch.device("cpu")
    assert not torch.distributed.is_initialized() and is_main()
    barrier()
    net = torch.nn.Linear(3, 2)
    net(torch.ones(4, 3)).sum().backward()
    before = net.weight.grad.clone()
    all_reduce_mean_grads(net)
    assert torch.equal(net.weight.grad, before)
    assert all_finite(torch.tensor(1.0)) and not all_finite(torch.tensor(float("nan")))


# ---------------------------------------------------------------------------------------------
# two processes on CPU (gloo)


def ghost_bn_reference(data: Path, cfg, out: Path) -> dict:
    """One process, same global batch and shards as 2-rank DDP; batch norm sees each rank's half.

    DDP averages the ranks' gradients of their half-batch mean losses, so one step here is the
    mean of the two half-batch losses, each forwarded alone (per-rank batch-norm statistics).
    """
    from ganaug.data import read_npz

    real = read_npz(data)
    arrays = {s: (real.images[s], real.labels[s]) for s in ("train", "val", "test")}
    run = _start(cfg, out, "ref", arrays, real.class_names, torch.device("cpu"))
    images, labels = run.tensors["train"]
    half = cfg.classify.batch_size // 2
    run.model.train()
    for _ in range(cfg.classify.epochs):
        order = torch.randperm(len(images), generator=run.generator)
        shards = [order[r::2] for r in (0, 1)]
        for start in range(0, len(shards[0]), half):
            idx = [shard[start : start + half] for shard in shards]
            loss = sum(run.criterion(run.model(to_input(images[i], "cpu")), labels[i]) for i in idx)
            run.optimiser.zero_grad()
            (loss / 2).backward()
            run.optimiser.step()
    return {f"0.{k}": v.detach().clone() for k, v in run.model.named_parameters()}


@pytest.mark.slow
def test_classify_ddp_matches_one_process_and_resumes(tiny64, tmp_path):
    """Batch norm under DDP normalises each rank's 8 images (SyncBatchNorm has no CPU kernel), so
    the one-process reference normalises each half-batch alone; the rest is exact arithmetic."""
    args = ["classify", "--train", tiny64, "--eval", tiny64, "--model", "resnet18"]
    args += ["--profile", "smoke", "--device", "cpu"]
    args += [a for s in CLASSIFY_SETS for a in ("--set", s)]

    whole = torchrun([*args, "--out", tmp_path / "whole"], tmp_path / "probe_whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert (tmp_path / "whole" / "metrics.json").is_file()
    assert "test accuracy" in whole.stdout and whole.stdout.count("wrote ") == 1  # rank 0 only
    for epoch in (1, 2):
        assert_same(*rank_params(tmp_path / "probe_whole", epoch))  # bitwise: same weights

    cfg = load_config("smoke", ["classify.model=resnet18", *CLASSIFY_SETS])
    reference = ghost_bn_reference(tiny64, cfg, tmp_path / "ref")
    final = rank_params(tmp_path / "probe_whole", 2)[0]
    # bitwise here (one thread: the same kernels in the same order); a wrong shard, batch or
    # gradient scale moves weights by ~lr = 1e-3 (a plain one-process run differs by ~1e-2)
    assert_same(final, reference, atol=1e-5)
    first = rank_params(tmp_path / "probe_whole", 1)[0]
    assert max((final[k] - first[k]).abs().max() for k in final) > 1e-4  # the check can fail

    out = tmp_path / "resumed"
    cut = torchrun([*args, "--out", out], tmp_path / "probe_cut", stop_after=1)
    assert cut.returncode != 0 and (out / "last.pt").is_file()
    assert not (out / "metrics.json").exists()
    rest = torchrun([*args, "--out", out], tmp_path / "probe_rest")
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert not (tmp_path / "probe_rest" / "rank0_epoch1.pt").exists()  # epoch 1 was not redone
    assert_same(rank_params(tmp_path / "probe_rest", 2)[0], final)
    whole_curves = (tmp_path / "whole" / "curves.csv").read_text().splitlines()
    resumed_curves = (out / "curves.csv").read_text().splitlines()
    assert len(resumed_curves) == 3  # header + epochs 1 and 2
    assert [r.split(",")[:3] for r in resumed_curves] == [r.split(",")[:3] for r in whole_curves]


@pytest.mark.slow
def test_gan_train_two_processes_agree_and_resume(tiny64, tmp_path):
    args = ["gan", "train", "--data", tiny64, "--profile", "smoke", "--device", "cpu"]
    args += [a for s in GAN_SETS for a in ("--set", s)]

    whole = torchrun([*args, "--out", tmp_path / "whole"], tmp_path / "probe_whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    log_rows = (tmp_path / "whole" / "log.csv").read_text().splitlines()
    assert len(log_rows) == 3  # header + 2 epochs, written once
    for epoch in (1, 2):
        assert_same(*rank_params(tmp_path / "probe_whole", epoch))
    ckpt = safe_torch_load(tmp_path / "whole" / "checkpoints" / "last.pt")
    states = ckpt["rank_rngs"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])  # z differs per rank
    assert torch.equal(states[0], ckpt["rng"]["train"])

    out = tmp_path / "resumed"
    cut = torchrun([*args, "--out", out], tmp_path / "probe_cut", stop_after=2)
    assert cut.returncode != 0
    assert safe_torch_load(out / "checkpoints" / "last.pt")["epoch"] == 1
    rest = torchrun([*args, "--out", out], tmp_path / "probe_rest")
    assert rest.returncode == 0, rest.stderr[-3000:]
    final = rank_params(tmp_path / "probe_whole", 2)[0]
    for resumed in rank_params(tmp_path / "probe_rest", 2):  # every rank's stream continued
        assert_same(resumed, final)
