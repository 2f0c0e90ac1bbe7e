"""The stylegan2 family and ADA: the nets' shapes, the augmentation pipeline, p's heuristic,
exact resume with p and the R1 counter, and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_imageset
from ganaug import InputError
from ganaug.config import load_config
from ganaug.data import read_npz, write_npz
from ganaug.generators import FAMILIES
from ganaug.generators.ada import AdaState, augment
from ganaug.generators.checkpoint import load_checkpoint
from ganaug.generators.loop import train_gan
from ganaug.generators.stylegan2.nets import Discriminator, Generator, check_size, init_nets
from ganaug.report.figures import fig_gan_losses
from ganaug.runtime import make_generator

TINY = [
    "gan.family=stylegan2",
    "gan.mode=conditional",
    "gan.width=16",
    "gan.z_dim=8",
    "gan.batch_size=8",
    "gan.subset=0",
    "gan.lr=0.002",
    "gan.adam_beta1=0",
    "gan.adam_beta2=0.99",
    "gan.epochs_lr1=2",
    "gan.epochs_lr2=1",
    "gan.ckpt_every=1",
    "gan.grid_every=1",
    "gan.ema_decay=0.9",
    "gan.diffaug=",
    "gan.r1_every=2",
    "gan.ada_interval=1",
    "gan.ada_kimg=1",
    "runtime.device=cpu",
    "runtime.tensorboard=false",
]


def args(size: int = 16, mode: str = "conditional") -> dict:
    cfg = load_config("smoke", [*TINY, f"gan.mode={mode}"])
    return FAMILIES["stylegan2"].model_args((size, size, 3), 3, cfg.gan)


def test_nets_map_noise_and_labels_to_images_and_scores():
    a = args(32)
    gen, disc = Generator(a, make_generator(0)), Discriminator(a)
    init_nets(gen, disc, generator=make_generator(0))
    z, labels = torch.randn(4, 8, generator=make_generator(1)), torch.tensor([0, 1, 2, 0])
    images = gen(z, labels)
    assert images.shape == (4, 3, 32, 32) and torch.isfinite(images).all()
    assert torch.equal(gen(z, labels), images)  # sampling noise is fixed: a function of z alone
    noisy = gen(z, labels, make_generator(2))  # training draws fresh noise
    assert noisy.shape == images.shape
    assert not torch.equal(gen(z, torch.tensor([1, 1, 2, 0])), images)  # the label matters
    scores = disc(images, labels)
    assert scores.shape == (4,) and not torch.equal(disc(images, (labels + 1) % 3), scores)
    with pytest.raises(InputError, match="power of two"):
        check_size(48)


def test_ada_is_the_identity_at_p_zero_seeded_and_differentiable():
    x = torch.rand(6, 3, 16, 16, generator=make_generator(0)) * 2 - 1
    assert augment(x, 0.0, make_generator(1)) is x
    one, two = augment(x, 0.8, make_generator(1)), augment(x, 0.8, make_generator(1))
    assert torch.equal(one, two) and not torch.allclose(one, x)
    x.requires_grad_(True)
    augment(x, 1.0, make_generator(3)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator learns through it
    gray = augment(torch.zeros(2, 1, 16, 16), 1.0, make_generator(4))  # colour ops skip hue
    assert gray.shape == (2, 1, 16, 16)


def test_ada_p_rises_when_the_discriminator_overfits_and_falls_otherwise():
    cfg = load_config("smoke", [*TINY, "gan.ada_kimg=1", "gan.ada_interval=2"]).gan
    ada = AdaState(cfg)
    for _ in range(4):  # every real image scored positive: r_t = 1 > 0.6
        ada.observe(torch.ones(8), 8)
    assert ada.p == pytest.approx(2 * 8 * 2 / 1000)
    for _ in range(2):  # every real scored negative: r_t = -1
        ada.observe(-torch.ones(8), 8)
    assert ada.p == pytest.approx(8 * 2 / 1000)
    fixed = AdaState(load_config("smoke", [*TINY, "gan.ada_target=0", "gan.ada_p=0.3"]).gan)
    fixed.observe(torch.ones(8), 8)
    assert fixed.p == 0.3 and not math.isnan(fixed.p)


def test_resumed_run_equals_the_uninterrupted_one_with_p_and_r1_counter(tmp_path: Path):
    data = make_imageset(n=24, size=16, classes=3)
    cfg = load_config("smoke", [*TINY, "gan.ada_p=0.5"])  # p moves from 0.5 every step
    whole = load_checkpoint(train_gan(data, cfg, tmp_path / "whole"))
    train_gan(data, cfg, tmp_path / "part", stop_after=1)
    part = load_checkpoint(train_gan(data, cfg, tmp_path / "part"))
    assert whole["family"] == "stylegan2" and whole["epoch"] == part["epoch"] == 3
    assert whole["unit_state"] == part["unit_state"] and whole["unit_state"][0]["p"] != 0.5
    assert whole["unit_state"][0]["d_steps"] == 9  # 3 epochs x 3 steps
    for name in ("G", "D", "G_ema"):
        for key, value in whole[name][0].items():
            assert torch.equal(value, part[name][0][key]), (name, key)
    assert torch.equal(whole["rng"]["train"], part["rng"]["train"])
    log = (tmp_path / "whole" / "log.csv").read_text().splitlines()
    assert log[0].endswith(",ada_p")
    assert float(log[-1].split(",")[-1]) == pytest.approx(whole["unit_state"][0]["p"], abs=1e-5)
    # the report's GAN figure gains a panel for p
    without = tmp_path / "no_ada.csv"
    without.write_text("\n".join(line.rsplit(",", 1)[0] for line in log) + "\n")
    fig_gan_losses(tmp_path / "whole" / "log.csv", tmp_path / "with_p.png")
    fig_gan_losses(without, tmp_path / "without_p.png")
    with Image.open(tmp_path / "with_p.png") as a, Image.open(tmp_path / "without_p.png") as b:
        assert a.width > b.width * 1.2


def test_cli_trains_and_samples_stylegan2(tmp_path: Path, cli):
    data = tmp_path / "d.npz"
    write_npz(data, make_imageset(n=24, size=16, classes=3, splits=("train",)))
    sets = [a for item in TINY for a in ("--set", item)]
    out = tmp_path / "g"
    assert cli(["gan", "train", "--data", data, "--out", out, "--profile", "smoke", *sets]) == 0
    raw = tmp_path / "raw.npz"
    ckpt = out / "checkpoints" / "last.pt"
    assert cli(["gan", "sample", "--checkpoint", ckpt, "--n", 9, "--out", raw, *sets]) == 0
    samples = read_npz(raw)
    assert samples.images["train"].shape == (9, 16, 16, 3)
    assert samples.labels["train"].tolist() == [i % 3 for i in range(9)]
