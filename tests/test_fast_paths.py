"""Fast paths (runtime.*): each gives the plain path's result within tolerance.

On CUDA they are on by default; here each is forced on the CPU (bf16 autocast and channels_last
run on CPU kernels, fused Adam has a CPU kernel, torch.compile uses the CPU inductor backend).
The pinned host copy needs CUDA and is exercised by bench/gpu_check.py instead.
"""

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import ganaug.classify.state as classify_state
from conftest import learnable_imageset, make_imageset
from ganaug.classify import build_model, fit_classifier, load_classifier, to_input, train_one_epoch
from ganaug.config import RuntimeConfig, load_config
from ganaug.generators import FAMILIES
from ganaug.generators.family import Step, build_units, from_uint8
from ganaug.generators.monitor import EpochStats, NanGuard
from ganaug.generators.wgan import critic_step, generator_step
from ganaug.generators.wgan.nets import build_pair
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

WGAN = FAMILIES["wgan"]

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
    args = WGAN.model_args((16, 16, 3), 3, cfg.gan)
    fast = FastPaths(compile=True, fused=True)
    unit = build_units(WGAN, args, cfg.gan, torch.arange(6) % 3, torch.device("cpu"), fast)[0]
    assert unit.nets["G"]._compiled_call_impl is not None
    assert (unit.nets["D"]._compiled_call_impl is not None) is critic_compiled


def test_gan_nets_channels_last_and_autocast_match_plain():
    cfg = load_config("smoke", ["gan.width=16", "gan.z_dim=8", "gan.mode=unconditional"])
    args = WGAN.model_args((16, 16, 3), 1, cfg.gan)
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


class _RecordingOptimiser:
    """Stands in for the optimiser in train_one_epoch: keeps the gradients, changes no weight."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.grads: list[torch.Tensor] = []

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.grads = [p.grad.detach().clone() for p in self.model.parameters()]


STEP_IMAGES = torch.randint(0, 256, (16, 64, 64, 3), generator=make_generator(1), dtype=torch.uint8)
STEP_LABELS = torch.arange(16) % 3


def _resnet18(seed: int = 0) -> nn.Module:
    """resnet18 for 3 classes as fit_classifier initialises it with classify.seed = seed."""
    torch.manual_seed(seed)
    return build_model("resnet18", 3, 3)


def _classifier_step(fast: FastPaths) -> tuple[float, list[torch.Tensor], nn.Module]:
    """Loss and gradients of one step of the classifier's own loop (one batch = the whole set)."""
    model = prepare_module(_resnet18(), fast)
    recorder = _RecordingOptimiser(model)
    loss, _ = train_one_epoch(
        model, recorder, nn.CrossEntropyLoss(), STEP_IMAGES, STEP_LABELS,
        batch_size=16, generator=make_generator(0), fast=fast,
    )  # fmt: skip
    return loss, recorder.grads, model


def _float64_step() -> tuple[float, list[torch.Tensor]]:
    """The same step in float64: the reference both float32 paths are measured against."""
    model = _resnet18().double().train()
    order = torch.randperm(16, generator=make_generator(0))  # train_one_epoch's batch order
    loss = nn.functional.cross_entropy(
        model(to_input(STEP_IMAGES[order], "cpu").double()), STEP_LABELS[order]
    )
    loss.backward()
    return loss.item(), [p.grad for p in model.parameters()]


def _worst_relative_error(grads: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    """max over parameter tensors of |g - ref| / |ref| (Frobenius norms)."""
    return max(((g.double() - r).norm() / r.norm()).item() for g, r in zip(grads, ref, strict=True))


def test_classifier_step_with_channels_last_matches_plain():
    """One forward and backward of resnet18 through train_one_epoch, channels_last vs plain.

    Both float32 paths are compared with a float64 run of the same step. Their error is float32
    rounding of each path's kernels (up to ~5e-3 relative for a tensor of small gradients here;
    the kernels, and so the figure, depend on the CPU), so the fast path may be off by a small
    multiple of the plain path's own error, measured in the same process on the same CPU. A
    wrong layout or a mixed-up axis is off by order 1.
    """
    ref_loss, ref_grads = _float64_step()
    plain_loss, plain_grads, _ = _classifier_step(PLAIN)
    loss, grads, model = _classifier_step(FastPaths(channels_last=True, fused=True))
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain_error = _worst_relative_error(plain_grads, ref_grads)
    assert plain_error < 0.05  # float32 is sound (a broken path is off by order 1)
    assert _worst_relative_error(grads, ref_grads) <= max(10 * plain_error, 1e-4)
    assert loss == pytest.approx(ref_loss, rel=1e-5) and plain_loss == pytest.approx(
        ref_loss, rel=1e-5
    )


def test_classifier_step_with_bf16_autocast_stays_close():
    """bf16 autocast in the classifier's loop: the loss within bf16 precision of float64, the
    gradients float32 and finite. (Gradient directions under bf16 are checked on a small net
    above: through resnet18's 20 layers bf16 rounding adds up to tens of percent per tensor.)"""
    ref_loss, _ = _float64_step()
    loss, grads, _ = _classifier_step(FastPaths(amp=True, channels_last=True))
    assert loss == pytest.approx(ref_loss, rel=0.03) and loss != pytest.approx(ref_loss, rel=1e-6)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def _weights(model_or_path: nn.Module | Path) -> dict[str, torch.Tensor]:
    """Trainable weights only: batch-norm running statistics move without an optimiser step."""
    model = model_or_path
    if not isinstance(model, nn.Module):
        model = load_classifier(model_or_path)
    return {name: p.detach() for name, p in model.named_parameters()}


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(((a[k].double() - b[k].double()) ** 2).sum().item() for k in a)


def test_classifier_fit_with_fast_paths_trains_like_plain(tmp_path, monkeypatch):
    """A whole fit_classifier epoch with the CUDA fast paths forced on the CPU.

    Two training runs are two trajectories: Adam's first steps move every weight by about lr
    times the sign of its gradient, so rounding that flips the sign of a tiny gradient changes
    the run, by an amount that depends on the CPU's kernels (4 % in train loss between two
    machines). The exact comparisons are the one-step tests above; here only what survives any
    CPU: the run finishes with finite losses, writes a plain-layout checkpoint, its losses sit
    in a loose band around the plain run's, and the weights travelled as far from their start
    as the plain run's did (a skipped or doubled optimiser step would not). bf16 autocast is
    left to the one-step tests: CPU bf16 batch norm differs by CPU (on one of ours a resnet101
    epoch gave a NaN loss on 8-image batches); on CUDA batch norm stays float32 under autocast.
    """
    fast = FastPaths(channels_last=True, fused=True, pin_memory=True)
    sets = ["classify.model=resnet18", "classify.epochs=1", "classify.batch_size=16"]
    cfg = load_config("smoke", [*sets, "classify.lr=1e-5"])
    data = learnable_imageset()
    fit_classifier(data, data, cfg, tmp_path / "plain", device="cpu")
    monkeypatch.setattr(classify_state, "fast_paths", lambda runtime, device: fast)
    fit_classifier(data, data, cfg, tmp_path / "fast", device="cpu")
    row = _rows(tmp_path / "fast" / "curves.csv")[0]
    ref = _rows(tmp_path / "plain" / "curves.csv")[0]
    for key in ("train_loss", "val_loss", "test_loss"):
        assert math.isfinite(row[key]) and row[key] == pytest.approx(ref[key], rel=0.25), key
    start = _weights(_resnet18(cfg.classify.seed))
    travelled = _distance(_weights(tmp_path / "fast" / "last.pt"), start)
    plain_travelled = _distance(_weights(tmp_path / "plain" / "last.pt"), start)
    assert 0.9 < (travelled / plain_travelled) ** 0.5 < 1.1  # 1.0000 here; 0.77 skipping half
    model = load_classifier(tmp_path / "fast" / "last.pt")  # a plain model loads the weights
    assert model.conv1.weight.is_contiguous()


def _gan_unit(fast: FastPaths, loss: str = "wgan-gp"):
    sets = ["gan.width=16", "gan.z_dim=8", "gan.mode=conditional", f"gan.loss={loss}"]
    cfg = load_config("smoke", sets)
    args = WGAN.model_args((16, 16, 3), 3, cfg.gan)
    labels = torch.arange(8) % 3
    return build_units(WGAN, args, cfg.gan, labels, torch.device("cpu"), fast)[0], cfg.gan


def _gan_steps(fast: FastPaths):
    """One critic step and one generator step of the GAN's own loop, each from the same start
    (the generator step on a fresh unit, so both paths see the same critic)."""
    images = torch.from_numpy(make_imageset(n=8, size=16).images["train"])
    real = as_input(from_uint8(images), fast)  # (8, 3, 16, 16) in [-1, 1]
    labels = torch.arange(8) % 3
    unit, g = _gan_unit(fast)
    stats, guard = EpochStats(), NanGuard(g, Path("unused"), None, 0)

    def step(seed: int) -> Step:
        return Step(g, None, None, (), make_generator(seed), stats, guard, fast)

    critic_step(unit, real, labels, step(5))
    critic_grads = [p.grad.clone() for p in unit.nets["D"].parameters()]
    fresh, _ = _gan_unit(fast)
    generator_step(fresh, 8, labels, step(6))
    gen_grads = [p.grad.clone() for p in fresh.nets["G"].parameters()]
    return stats.row(1, 1, g.lr, 1.0), critic_grads, gen_grads, unit


def test_gan_steps_with_fast_paths_match_plain():
    """The critic and generator steps with amp, channels_last and fused Adam vs the plain path:
    the same losses within bf16 precision, gradients pointing the same way, the penalty's
    double backward in float32, and fused optimiser state."""
    ref, ref_critic, ref_gen, _ = _gan_steps(PLAIN)
    row, critic_grads, gen_grads, unit = _gan_steps(ALL_BUT_COMPILE)
    for key in ("critic_loss", "wasserstein", "gp", "gen_loss"):
        assert row[key] == pytest.approx(ref[key], rel=0.05, abs=0.02), key
    # bf16 keeps ~3 significant digits per operation: the critic's gradient came out at a cosine
    # of 0.9998 here, the generator's (through both nets) at 0.988; a broken path is near 0
    assert _cosine(critic_grads, ref_critic) > 0.99 and _cosine(gen_grads, ref_gen) > 0.95
    assert all(g.dtype == torch.float32 for g in critic_grads + gen_grads)
    assert unit.opts["D"].param_groups[0]["fused"] is True
    assert unit.nets["D"].convs[0].weight.is_contiguous(memory_format=torch.channels_last)
