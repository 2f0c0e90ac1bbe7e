"""Generator families behind one interface: the registry, old checkpoints, and a test-only toy
family that trains, resumes and samples through the generic loop and the CLI (adding a family
is one class plus one registry line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_imageset
from ganaug.config import GanConfig, load_config
from ganaug.data import read_npz, write_npz
from ganaug.generators import FAMILIES, register
from ganaug.generators.checkpoint import load_checkpoint
from ganaug.generators.family import GeneratorFamily, Step, Unit
from ganaug.generators.loop import train_gan
from ganaug.runtime import atomic_torch_save, make_optimiser, safe_torch_load


class ToyGenerator(nn.Module):
    """One learnable image per class plus scaled noise: learns each class's mean image."""

    def __init__(self, classes: int, channels: int, size: int, init: torch.Generator) -> None:
        super().__init__()
        self.means = nn.Parameter(0.01 * torch.randn(classes, channels, size, size, generator=init))
        self.noise_scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.means[labels] + self.noise_scale * noise)


class ToyFamily(GeneratorFamily):
    """No discriminator: each step pulls the class images towards a real batch (MSE)."""

    name = "toy"

    def model_args(self, image_shape, num_classes: int, g: GanConfig) -> dict:
        h, _, c = image_shape
        return {"mode": g.mode, "size": h, "channels": c, "num_classes": num_classes, "units": 1}

    def build_nets(self, args: dict, init: torch.Generator) -> dict[str, nn.Module]:
        return {"G": ToyGenerator(args["num_classes"], args["channels"], args["size"], init)}

    def optimiser(self, name: str, net: nn.Module, g: GanConfig, fast):
        return make_optimiser("adam", net.parameters(), fast, lr=g.lr)

    def train_step(self, unit: Unit, step: Step) -> None:
        real, labels = step.real_batch()
        noise = torch.randn(real.shape, generator=step.rng)
        loss = ((unit.nets["G"](noise, labels) - real) ** 2).mean()
        unit.opts["G"].zero_grad(set_to_none=True)
        if step.guard.finite(loss, "generator"):
            loss.backward()
            unit.opts["G"].step()
            step.stats.add(gen_loss=loss.item())
            step.stats.images += len(real)

    def noise(self, n: int, args: dict, generator: torch.Generator) -> torch.Tensor:
        shape = (n, args["channels"], args["size"], args["size"])
        return torch.randn(shape, generator=generator, device=generator.device)

    def generate(self, net, noise, labels, args):
        return net(noise, labels)


TOY = [
    "gan.family=toy",
    "gan.mode=conditional",
    "gan.lr=0.05",
    "gan.batch_size=8",
    "gan.subset=0",
    "gan.epochs_lr1=6",
    "gan.epochs_lr2=0",
    "gan.ckpt_every=1",
    "gan.grid_every=3",
    "runtime.device=cpu",
]


@pytest.fixture
def toy():
    family = register(ToyFamily())  # the one registry line a new family needs
    yield family
    del FAMILIES["toy"]


def two_colour_set(n: int = 48, size: int = 8):
    """Class 0 red images, class 1 blue ones, with a little noise."""
    data = make_imageset(n=n, size=size, classes=2)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 30, (n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    images[labels == 0, :, :, 0] += 200
    images[labels == 1, :, :, 2] += 200
    data.images["train"], data.labels["train"] = images, labels
    return data


def test_registry_lists_the_families_and_refuses_an_unknown_one(tmp_path, cli, capsys):
    shown = subprocess.run(
        [sys.executable, "-c", "import ganaug.generators as g; print(sorted(g.FAMILIES))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "['diffusion', 'stylegan2', 'wgan']"
    data = tmp_path / "d.npz"
    write_npz(data, make_imageset(n=12, size=16))
    argv = ["gan", "train", "--data", data, "--out", tmp_path / "g", "--set", "gan.family=dcgan"]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.splitlines() == [err]
        and "'dcgan'" in err
        and "['diffusion', 'stylegan2', 'wgan']" in err
    )
    assert not (tmp_path / "g").exists()


def test_toy_family_trains_resumes_and_samples_through_the_cli(toy, tmp_path, cli, capsys):
    data = tmp_path / "two.npz"
    write_npz(data, two_colour_set())
    sets = [a for item in TOY for a in ("--set", item)]

    def train(out: Path, *extra: str) -> int:
        args = ["gan", "train", "--data", data, "--out", out, "--profile", "smoke", *sets]
        return cli([*args, *extra])

    whole, part = tmp_path / "whole", tmp_path / "part"
    assert train(whole) == 0
    # an interrupted run (3 of 6 epochs) resumed by the same command ends bitwise identical
    assert train(part, "--set", "gan.epochs_lr1=3") == 0
    assert train(part) == 0
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (whole, part))
    assert a["family"] == "toy" and a["epoch"] == b["epoch"] == 6
    assert torch.equal(a["G"][0]["means"], b["G"][0]["means"])
    assert torch.equal(a["opt_G"][0]["state"][0]["exp_avg"], b["opt_G"][0]["state"][0]["exp_avg"])
    rows = (whole / "log.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("epoch,step,critic_loss,gen_loss")
    assert (whole / "grids" / "epoch_0006.png").is_file()
    # per-seed sampling through the CLI: class 0 comes out red, class 1 blue
    raw = tmp_path / "raw.npz"
    ckpt = whole / "checkpoints" / "last.pt"
    assert cli(["gan", "sample", "--checkpoint", ckpt, "--n", 20, "--out", raw, *sets]) == 0
    samples = read_npz(raw)
    means = samples.images["train"].reshape(20, -1, 3).mean(axis=1)
    labels = samples.labels["train"]
    assert (means[labels == 0, 0] > means[labels == 0, 2] + 60).all()
    assert (means[labels == 1, 2] > means[labels == 1, 0] + 60).all()
    # selection without a realism score: the labeller's confidence alone ranks the samples
    real = tmp_path / "real.npz"
    write_npz(real, two_colour_set(n=24))
    out = tmp_path / "sel" / "synthetic.npz"
    args = ["select", "--samples", raw, "--real", real, "--out", out, "--checkpoint", ckpt]
    assert cli([*args, "--k", 6, "--profile", "smoke", "--set", "select.min_nn_distance=0"]) == 0
    table = (tmp_path / "sel" / "selection.csv").read_text().splitlines()
    critic = table[0].split(",").index("critic_rank")
    assert {row.split(",")[critic] for row in table[1:]} == {"-1"}


def test_checkpoint_from_before_families_is_a_wgan_one(tmp_path, cli):
    cfg = load_config(
        "smoke", ["gan.width=16", "gan.z_dim=8", "gan.subset=0", "gan.epochs_lr1=1",
                  "gan.epochs_lr2=0", "runtime.device=cpu"]
    )  # fmt: skip
    ckpt = train_gan(make_imageset(n=24, size=16), cfg, tmp_path / "g")
    old = safe_torch_load(ckpt)
    del old["family"]
    old["config"]["gan"].pop("family")
    legacy = tmp_path / "legacy.pt"
    atomic_torch_save(old, legacy)
    for path, name in ((ckpt, "new.npz"), (legacy, "old.npz")):
        assert cli(["gan", "sample", "--checkpoint", path, "--n", 6, "--out", tmp_path / name]) == 0
    new, legacy_samples = read_npz(tmp_path / "new.npz"), read_npz(tmp_path / "old.npz")
    assert np.array_equal(new.images["train"], legacy_samples.images["train"])
    # and a run resumes from it with today's config (gan.family: wgan)
    (tmp_path / "g" / "checkpoints" / "last.pt").write_bytes(legacy.read_bytes())
    more = cfg.replace(gan={"epochs_lr2": 1})
    assert (
        load_checkpoint(train_gan(make_imageset(n=24, size=16), more, tmp_path / "g"))["epoch"] == 2
    )
