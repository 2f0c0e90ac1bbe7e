"""The diffusion family: per-seed sampling (DDIM and DDPM, guided), exact resume, the CLI,
selection by k-NN realism instead of a critic, and its settings' refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_imageset
from ganaug.config import load_config
from ganaug.data import read_npz, write_npz
from ganaug.generators import FAMILIES
from ganaug.generators.checkpoint import load_checkpoint
from ganaug.generators.loop import train_gan
from ganaug.generators.sample import sample_images
from ganaug.metrics import knn_realism
from ganaug.select import select_samples
from ganaug.select.scores import has_realism_score

TINY = [
    "gan.family=diffusion",
    "gan.mode=conditional",
    "gan.width=16",
    "gan.unet_mult=1,2",
    "gan.attention_res=8",
    "gan.batch_size=8",
    "gan.subset=0",
    "gan.lr=0.001",
    "gan.epochs_lr1=2",
    "gan.epochs_lr2=1",
    "gan.ckpt_every=1",
    "gan.grid_every=1",
    "gan.ema_decay=0.9",
    "gan.diffaug=",
    "gan.sample_steps=4",
    "runtime.device=cpu",
    "runtime.tensorboard=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(the uninterrupted run's checkpoint, the tmp dir): 3 epochs on 24 images, 16 px."""
    root = tmp_path_factory.mktemp("diffusion")
    cfg = load_config("smoke", TINY)
    return train_gan(make_imageset(n=24, size=16, classes=3), cfg, root / "whole"), root


def test_resumed_run_equals_the_uninterrupted_one(trained):
    ckpt, root = trained
    cfg = load_config("smoke", TINY)
    data = make_imageset(n=24, size=16, classes=3)
    train_gan(data, cfg, root / "part", stop_after=1)
    part = load_checkpoint(train_gan(data, cfg, root / "part"))
    whole = load_checkpoint(ckpt)
    assert whole["family"] == part["family"] == "diffusion" and part["epoch"] == 3
    for name in ("G", "G_ema"):
        for key, value in whole[name][0].items():
            assert torch.equal(value, part[name][0][key]), (name, key)
    assert torch.equal(whole["rng"]["train"], part["rng"]["train"])
    log = (root / "whole" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and all(float(row.split(",")[3]) > 0 for row in log[1:])  # gen_loss


@pytest.mark.parametrize(
    "sampling",
    [
        ["gan.sampler=ddim"],
        ["gan.sampler=ddpm"],
        ["gan.sampler=ddim", "gan.eta=1", "gan.guidance=2"],
    ],
    ids=["ddim", "ddpm", "ddim-eta1-guided"],
)
def test_an_image_is_regenerated_alone_from_its_seed(trained, sampling: list[str]):
    ckpt, _ = trained
    g = load_config("smoke", [*TINY, *sampling]).gan
    batch = sample_images(ckpt, 5, 10, device="cpu", batch_size=2, g=g)
    alone = sample_images(ckpt, 1, 13, device="cpu", g=g)
    assert np.array_equal(batch.images["train"][3], alone.images["train"][0])
    assert batch.labels["train"].tolist() == [1, 2, 0, 1, 2]
    other = sample_images(ckpt, 5, 11, device="cpu", g=g)
    assert not np.array_equal(other.images["train"][0], batch.images["train"][0])


def test_sampling_settings_change_the_images_without_retraining(trained):
    ckpt, _ = trained
    images = {}
    for name, extra in {
        "plain": [],
        "guided": ["gan.guidance=3"],
        "ddpm": ["gan.sampler=ddpm"],
    }.items():
        g = load_config("smoke", [*TINY, *extra]).gan
        images[name] = sample_images(ckpt, 3, 0, device="cpu", g=g).images["train"]
    assert not np.array_equal(images["plain"], images["guided"])
    assert not np.array_equal(images["plain"], images["ddpm"])


def test_cli_trains_resumes_with_new_sampling_settings_and_samples(tmp_path: Path, cli):
    data = tmp_path / "d.npz"
    write_npz(data, make_imageset(n=24, size=16, classes=3, splits=("train",)))
    sets = [a for item in TINY for a in ("--set", item)]
    out = tmp_path / "g"
    train = ["gan", "train", "--data", data, "--out", out, "--profile", "smoke", *sets]
    assert cli([*train, "--set", "gan.epochs_lr1=1"]) == 0
    # a sampling setting is not a reason to refuse the resume
    assert cli([*train, "--set", "gan.guidance=1.5"]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    assert load_checkpoint(ckpt)["epoch"] == 3
    raw = tmp_path / "raw.npz"
    assert cli(["gan", "sample", "--checkpoint", ckpt, "--n", 4, "--out", raw, *sets]) == 0
    samples = read_npz(raw)
    assert samples.images["train"].shape == (4, 16, 16, 3)
    assert samples.labels["train"].tolist() == [0, 1, 2, 0]


def test_knn_realism_scores_typical_fakes_above_outliers():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 4))
    fake = np.stack([real[0] + 0.01, np.full(4, 8.0), np.zeros(4)])
    scores = knn_realism(real, fake, k=3)
    assert scores[0] > 1 and scores[2] > 1  # near a real sample, at the centre
    assert scores[1] < 0.5 < scores[2]  # far outside every real ball
    with pytest.raises(ValueError, match="k=3"):
        knn_realism(real[:3], fake, k=3)


def test_selection_ranks_diffusion_samples_by_knn_realism_not_a_critic(trained, tmp_path: Path):
    ckpt, _ = trained
    assert not has_realism_score(ckpt)
    cfg = load_config("smoke", [*TINY, "select.k=6", "select.min_nn_distance=0"])
    raw = sample_images(ckpt, 18, 0, device="cpu", g=cfg.gan)
    real = make_imageset(n=30, size=16, classes=3)
    selected = select_samples(raw, real, cfg, tmp_path / "sel", checkpoint=ckpt, device="cpu")
    assert selected.meta["ranked_by"] == ["confidence", "knn_realism"]
    header, *rows = (tmp_path / "sel" / "selection.csv").read_text().splitlines()
    columns = header.split(",")
    ranks = [int(row.split(",")[columns.index("knn_realism_rank")]) for row in rows]
    assert sorted(ranks) == list(range(18))
    critic = [row.split(",")[columns.index("critic_rank")] for row in rows]
    assert set(critic) == {"-1"}


def test_diffusion_settings_are_refused_in_one_line(cli, tmp_path: Path, capsys):
    data = tmp_path / "d.npz"
    write_npz(data, make_imageset(n=24, size=16, classes=3, splits=("train",)))
    base = ["gan", "train", "--data", data, "--out", tmp_path / "g", "--profile", "smoke"]
    sets = [a for item in TINY for a in ("--set", item)]
    for bad, named in [
        ("gan.unet_mult=1,x", "gan.unet_mult"),
        ("gan.guidance=-1", "gan.guidance"),
        ("gan.unet_mult=1,2,2,2,2,2", "gan.unet_mult"),  # halves 16 px five times
    ]:
        code = cli([*base, *sets, "--set", bad])
        err = capsys.readouterr().err.strip()
        assert code == 2 and named in err and len(err.splitlines()) == 1, (bad, err)
    assert not (tmp_path / "g").exists()
    assert "diffusion" in FAMILIES


def test_widths_that_32_does_not_divide_build_and_denoise():
    g = load_config("smoke", [*TINY, "gan.width=40"]).gan
    family = FAMILIES["diffusion"]
    args = family.model_args((16, 16, 3), 3, g)
    net = family.build_nets(args, torch.Generator().manual_seed(0))["G"]
    x, t = torch.zeros(2, 3, 16, 16), torch.tensor([0, 999])
    assert net(x, t, torch.tensor([0, 3])).shape == (2, 3, 16, 16)  # 3: the "no class" entry
