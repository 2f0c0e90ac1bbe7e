"""Fast paths (runtime.*): each gives the plain path's result within tolerance.

On CUDA they are on by default; here each is forced on the CPU (bf16 autocast and channels_last
run on CPU kernels, fused Adam has a CPU kernel, torch.compile uses the CPU inductor backend).
The pinned host copy needs CUDA and is exercised by bench/gpu_check.py instead.
"""

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import learnable_imageset, make_imageset
from ganaug import classify
from ganaug.classify import fit_classifier, load_classifier, to_input
from ganaug.config import RuntimeConfig, load_config
from ganaug.gan import train as gan_train
from ganaug.gan.nets import build_pair
from ganaug.gan.state import build_units, load_checkpoint, model_args
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    as_input,
    autocast,
    fast_paths,
    make_generator,
    make_optimiser,
    prepare_module,
)

ALL_BUT_COMPILE = FastPaths(amp=True, channels_last=True, fused=True, pin_memory=True)


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 3),
    )


def _step(net: nn.Module, fast: FastPaths) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and parameter gradients of one cross-entropy step on a fixed batch."""
    images = torch.randint(0, 256, (6, 16, 16, 3), generator=make_generator(1), dtype=torch.uint8)
    labels = torch.arange(6) % 3
    prepare_module(net, fast)
    with autocast(torch.device("cpu"), fast.amp):
        logits = net(to_input(images, "cpu", fast)).float()
    nn.functional.cross_entropy(logits, labels).backward()
    return logits.detach(), [p.grad.clone() for p in net.parameters()]


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return nn.functional.cosine_similarity(flat_a, flat_b, dim=0).item()


def test_fast_paths_apply_on_cuda_only_except_compile():
    on = RuntimeConfig(compile=True)
    assert fast_paths(on, torch.device("cpu")) == FastPaths(compile=True)
    cuda = fast_paths(on, torch.device("cuda"))
    assert cuda == FastPaths(True, True, True, True, True)
    off = RuntimeConfig(amp=False, channels_last=False, fused=False)
    assert fast_paths(off, torch.device("cuda")) == FastPaths(pin_memory=True)
    assert PLAIN.describe() == "none (plain path)"
    assert cuda.describe() == "amp, channels_last, fused, compile, pin_memory"


def test_channels_last_matches_plain():
    plain_logits, plain_grads = _step(_small_net(), PLAIN)
    net = _small_net()
    logits, grads = _step(net, FastPaths(channels_last=True))
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert to_input(
        torch.zeros(2, 8, 8, 3, dtype=torch.uint8), "cpu", FastPaths(True, True)
    ).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(logits, plain_logits, rtol=1e-4, atol=1e-5)
    for g, ref in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-5)


def test_bf16_autocast_is_close_to_float32():
    plain_logits, plain_grads = _step(_small_net(), PLAIN)
    logits, grads = _step(_small_net(), FastPaths(amp=True))
    scale = plain_logits.abs().max().item()
    assert (logits - plain_logits).abs().max().item() < 0.03 * scale  # bf16: ~3 digits
    assert not torch.equal(logits, plain_logits)  # autocast did run in bf16
    assert _cosine(grads, plain_grads) > 0.99
    assert all(g.dtype == torch.float32 for g in grads)  # weights and gradients stay float32


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_fused_optimisers_match_plain(kind):
    def run(fast: FastPaths) -> list[torch.Tensor]:
        net = _small_net()
        opt = make_optimiser(kind, net.parameters(), fast, lr=1e-2)
        gen = make_generator(3)
        for _ in range(5):
            for p in net.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        return [p.detach() for p in net.parameters()]

    fast = run(FastPaths(fused=True))
    for p, ref in zip(fast, run(PLAIN), strict=True):
        torch.testing.assert_close(p, ref, rtol=1e-5, atol=1e-6)
    defaults = make_optimiser(kind, _small_net().parameters(), FastPaths(fused=True)).defaults
    assert defaults["fused" if kind == "adam" else "foreach"] is True


def test_compiled_forward_matches_plain():
    """torch.compile (inductor on CPU): same logits and gradients, same state-dict keys."""
    plain_logits, plain_grads = _step(_small_net(), PLAIN)
    net = _small_net()
    keys = list(net.state_dict())
    logits, grads = _step(net, FastPaths(compile=True))
    assert net._compiled_call_impl is not None  # Module.compile took effect
    assert list(net.state_dict()) == keys  # checkpoints stay loadable by plain nets
    torch.testing.assert_close(logits, plain_logits, rtol=1e-4, atol=1e-5)
    for g, ref in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("loss, critic_compiled", [("wgan", True), ("wgan-gp", False)])
def test_gan_compiles_the_critic_only_without_gradient_penalty(loss, critic_compiled):
    cfg = load_config("smoke", ["gan.width=16", f"gan.loss={loss}"])
    args = model_args((16, 16, 3), 3, cfg.gan)
    fast = FastPaths(compile=True, fused=True)
    unit = build_units(args, cfg.gan, torch.arange(6) % 3, torch.device("cpu"), fast)[0]
    assert unit.generator._compiled_call_impl is not None
    assert (unit.critic._compiled_call_impl is not None) is critic_compiled


def test_gan_nets_channels_last_and_autocast_match_plain():
    cfg = load_config("smoke", ["gan.width=16", "gan.z_dim=8", "gan.mode=unconditional"])
    args = model_args((16, 16, 3), 1, cfg.gan)
    z = torch.rand(4, 8, generator=make_generator(2)) * 2 - 1

    def scores(fast: FastPaths) -> tuple[torch.Tensor, torch.Tensor]:
        gen, critic = build_pair(args, make_generator(0))
        prepare_module(gen, fast)
        prepare_module(critic, fast)
        with autocast(torch.device("cpu"), fast.amp):
            fake = gen(z, None).float()
            return fake, critic(as_input(fake, fast), None).float()

    fake, score = scores(PLAIN)
    fake_cl, score_cl = scores(FastPaths(channels_last=True))
    torch.testing.assert_close(fake_cl, fake, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(score_cl, score, rtol=1e-4, atol=1e-5)
    fake_bf, score_bf = scores(FastPaths(amp=True))
    assert (fake_bf - fake).abs().max().item() < 0.05  # tanh outputs in [-1, 1]
    assert (score_bf - score).abs().max().item() < 0.05 * score.abs().max().item() + 1e-3


def _rows(path: Path) -> list[dict[str, float]]:
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.mark.parametrize(
    "fast, tolerance",
    [(FastPaths(channels_last=True, fused=True, pin_memory=True), 1e-3), (ALL_BUT_COMPILE, 0.02)],
)
def test_classifier_fit_with_fast_paths_is_close_to_plain(tmp_path, monkeypatch, fast, tolerance):
    """fit_classifier with the CUDA fast paths forced on the CPU. A small learning rate keeps
    Adam (whose first steps are about lr times a gradient sign) from amplifying rounding, so the
    losses compare the fast and plain arithmetic rather than two training trajectories."""
    sets = ["classify.epochs=1", "classify.batch_size=16", "classify.lr=1e-5"]
    cfg = load_config("smoke", sets)
    data = learnable_imageset()
    fit_classifier(data, data, cfg, tmp_path / "plain", device="cpu")
    monkeypatch.setattr(classify, "fast_paths", lambda runtime, device: fast)
    fit_classifier(data, data, cfg, tmp_path / "fast", device="cpu")
    row = _rows(tmp_path / "fast" / "curves.csv")[0]
    ref = _rows(tmp_path / "plain" / "curves.csv")[0]
    for key in ("val_loss", "test_loss"):  # eval mode: running batch-norm statistics
        assert row[key] == pytest.approx(ref[key], rel=tolerance), key
    # not the train loss: train mode normalises 16-image batches of 1x1 maps at resnet18's end,
    # where a channel of near-zero batch variance magnifies rounding (6-11 % apart here)
    assert row["val_loss"] != ref["val_loss"]  # the fast path really ran
    model = load_classifier(tmp_path / "fast" / "last.pt")  # a plain model loads the weights
    assert model.conv1.weight.is_contiguous()


def test_gan_training_with_fast_paths_is_close_to_plain(tmp_path, monkeypatch):
    """train_gan with amp, channels_last and fused kernels forced on the CPU; GP stays float32."""
    sets = ["gan.width=16", "gan.z_dim=8", "gan.batch_size=8", "gan.n_critic=2", "gan.subset=0"]
    sets += ["gan.epochs_lr1=1", "gan.epochs_lr2=0", "runtime.device=cpu"]
    cfg = load_config("smoke", sets)
    data = make_imageset(n=32, size=16, classes=3)
    plain = gan_train.train_gan(data, cfg, tmp_path / "plain")
    monkeypatch.setattr(gan_train, "fast_paths", lambda runtime, device: ALL_BUT_COMPILE)
    fast = gan_train.train_gan(data, cfg, tmp_path / "fast")
    row, ref = _rows(tmp_path / "fast" / "log.csv")[0], _rows(tmp_path / "plain" / "log.csv")[0]
    for key in ("critic_loss", "wasserstein", "gp", "gen_loss"):
        assert row[key] == pytest.approx(ref[key], rel=0.1, abs=0.05), key
    ckpt, ckpt_ref = load_checkpoint(fast), load_checkpoint(plain)
    assert ckpt["G"][0].keys() == ckpt_ref["G"][0].keys()
    assert ckpt["opt_D"][0]["param_groups"][0]["fused"] is True
