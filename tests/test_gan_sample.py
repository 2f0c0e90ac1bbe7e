"""Sampling from a checkpoint (per-image seeds, labels), critic scores, and the `gan` commands."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_clean_interrupt, make_imageset
from ganaug import InputError
from ganaug.config import load_config
from ganaug.data import read_npz, write_npz
from ganaug.generators.checkpoint import load_checkpoint, load_nets
from ganaug.generators.loop import train_gan
from ganaug.generators.sample import realism_scores, sample_images
from ganaug.generators.wgan import REFERENCE_FAKES, REFERENCE_SEED, recalibrate_batch_norm
from ganaug.generators.wgan.nets import sample_z
from ganaug.runtime import make_generator

TINY = [
    "gan.width=16",
    "gan.z_dim=8",
    "gan.batch_size=8",
    "gan.n_critic=2",
    "gan.subset=0",
    "gan.epochs_lr1=1",
    "gan.epochs_lr2=1",
    "runtime.device=cpu",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained GAN per mode (module-scoped: trained once). Enough steps for the
    generator's batch-norm running statistics (used when sampling) to settle."""
    data = make_imageset(n=192, size=16, classes=3)
    out = {}
    for mode in ("unconditional", "conditional", "per_class"):
        sets = [f"gan.mode={mode}", "gan.ema_decay=0.5", "gan.n_critic=1", "gan.lr=1e-3"]
        sets += ["gan.epochs_lr1=3"]
        cfg = load_config("smoke", TINY + sets)
        out[mode] = train_gan(data, cfg, tmp_path_factory.mktemp(mode))
    return out


@pytest.mark.parametrize("mode", ["unconditional", "conditional", "per_class"])
def test_samples_carry_seeds_labels_and_provenance(checkpoints, mode):
    samples = sample_images(checkpoints[mode], 7, 0, device="cpu", batch_size=3)
    images, labels = samples.images["train"], samples.labels["train"]
    assert images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
    assert samples.extras["train_seeds"].tolist() == list(range(7))
    assert samples.class_names == ("c0", "c1", "c2")
    assert samples.meta["source_splits"] == {"train": ["synthetic"]}
    assert samples.meta["gan_mode"] == mode and samples.meta["stage"] == "gan-sample"
    if mode == "unconditional":
        assert labels.tolist() == [0] * 7 and samples.meta["labelled"] is False
    else:
        assert labels.tolist() == [i % 3 for i in range(7)] and samples.meta["labelled"] is True
    assert len({img.tobytes() for img in images}) == 7  # every seed gives its own image


@pytest.mark.parametrize("mode", ["conditional", "per_class"])
def test_same_seed_same_images_and_one_seed_regenerates_one_image(checkpoints, mode):
    first = sample_images(checkpoints[mode], 6, 10, device="cpu")
    again = sample_images(checkpoints[mode], 6, 10, device="cpu", batch_size=4)
    other = sample_images(checkpoints[mode], 6, 11, device="cpu")
    assert np.array_equal(first.images["train"], again.images["train"])
    assert not np.array_equal(first.images["train"], other.images["train"])
    alone = sample_images(checkpoints[mode], 1, 14, device="cpu")
    assert alone.labels["train"][0] == first.labels["train"][4]
    assert np.array_equal(alone.images["train"][0], first.images["train"][4])


def test_critic_scores_use_the_label_where_the_gan_has_classes(checkpoints):
    images = make_imageset(n=6, size=16, seed=3).images["train"]
    labels = np.array([0, 1, 2, 0, 1, 2])
    for mode in ("conditional", "per_class"):
        scores = realism_scores(checkpoints[mode], images, labels, device="cpu")
        shifted = realism_scores(checkpoints[mode], images, (labels + 1) % 3, device="cpu")
        assert scores.shape == (6,) and np.isfinite(scores).all()
        assert not np.allclose(scores, shifted)
        with pytest.raises(InputError, match="need one label per image"):
            realism_scores(checkpoints[mode], images, None)
    plain = realism_scores(checkpoints["unconditional"], images, None, device="cpu")
    assert np.array_equal(plain, realism_scores(checkpoints["unconditional"], images, labels))
    with pytest.raises(InputError, match="uint8 images"):
        realism_scores(checkpoints["unconditional"], images[:, :8, :8], None)


def test_gan_commands_train_and_sample(tmp_path: Path, cli, capsys):
    data = tmp_path / "tiny.npz"
    write_npz(data, make_imageset(n=24, size=16, classes=3, splits=("train",)))
    run = tmp_path / "gan"
    sets = [a for s in TINY for a in ("--set", s)]
    assert cli(["gan", "train", "--data", data, "--out", run, "--profile", "smoke", *sets]) == 0
    assert "checkpoints/last.pt" in capsys.readouterr().out
    assert (run / "config.yaml").is_file() and (run / "log.csv").is_file()
    assert not (run / "run.lock").exists()
    assert cli(["gan", "train", "--data", data, "--out", run, "--profile", "smoke", *sets]) == 0
    raw = tmp_path / "raw.npz"
    ckpt = run / "checkpoints" / "last.pt"
    args = ["gan", "sample", "--checkpoint", ckpt, "--n", 10, "--out", raw, "--seed", 3]
    assert cli(args) == 0
    assert "train: 10 images 16x16x3" in capsys.readouterr().out
    samples = read_npz(raw)
    assert samples.extras["train_seeds"].tolist() == list(range(3, 13))
    assert samples.labels["train"].tolist() == [s % 3 for s in range(3, 13)]  # smoke: conditional
    assert (tmp_path / "raw.png").is_file()
    assert cli(args) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err


SLOW_SAMPLE = """
import sys, time
from pathlib import Path
import ganaug.generators.sample as sample
to_uint8 = sample.to_uint8
def slow_to_uint8(images):  # marks that sampling started, then leaves 3 s to interrupt it
    Path(sys.argv[-1]).touch()
    time.sleep(3.0)
    return to_uint8(images)
sample.to_uint8 = slow_to_uint8
from ganaug.cli import app
app(sys.argv[1:-1])
"""


def test_sampling_interrupted_writes_nothing_and_the_rerun_equals_a_whole_run(
    checkpoints, tmp_path: Path, cli
):
    """Ctrl-C in the middle of `ganaug gan sample`: no npz or contact sheet, exit 130, one line."""
    started = tmp_path / "sampling-started"

    def argv(out: Path) -> list[str]:
        return ["gan", "sample", "--checkpoint", str(checkpoints["conditional"]), "--n", "40",
                "--out", str(out), "--profile", "smoke", "--quiet"]  # fmt: skip

    raw = tmp_path / "raw.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAMPLE, *argv(raw), str(started)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "sampling ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    assert_clean_interrupt(proc, tmp_path, signal.SIGINT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampling-started"]
    assert cli(argv(raw)) == 0  # the same command, not refused for an existing output
    assert cli(argv(tmp_path / "whole.npz")) == 0
    again, whole = read_npz(raw), read_npz(tmp_path / "whole.npz")
    assert np.array_equal(again.images["train"], whole.images["train"])
    assert np.array_equal(again.labels["train"], whole.labels["train"])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["gan", "sample", "--checkpoint", "{tmp}/none.pt", "--out", "{tmp}/o.npz"], "not found"),
        (["gan", "train", "--data", "{tiny}", "--out", "{tmp}/g"], "multiple of 16"),
        (["gan", "train", "--data", "{leaky}", "--out", "{tmp}/g"], "val split"),
        (["gan", "train", "--data", "{tiny}", "--out", "{tmp}/g", "--set", "gan.loss=x"], "loss"),
    ],
)
def test_gan_commands_bad_input_exit_2(tmp_path, tiny_npz, cli, capsys, args, needle):
    leaky = make_imageset(n=24, size=16)
    leaky.meta["source_splits"] = {"train": ["val"], "val": ["val"], "test": ["test"]}
    write_npz(tmp_path / "leaky.npz", leaky)
    argv = [a.format(tmp=tmp_path, tiny=tiny_npz, leaky=tmp_path / "leaky.npz") for a in args]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "g" / "checkpoints").exists()


def test_batch_norm_critic_scores_an_image_alone_with_fake_statistics(tmp_path: Path):
    """The paper's WGAN critic has batch norm: an image's score must not depend on its batch
    mates, and fakes are normalised by fake statistics as in training (not the running mix of
    real and fake batches)."""
    data = make_imageset(n=48, size=16, classes=3)
    sets = ["gan.mode=conditional", "gan.loss=wgan", "gan.diffaug=", "gan.ema_decay=0"]
    ckpt = train_gan(data, load_config("smoke", TINY + sets), tmp_path / "wgan")
    images = make_imageset(n=12, size=16, seed=5).images["train"]
    labels = np.arange(12) % 3
    alone = realism_scores(ckpt, images[:4], labels[:4], device="cpu", batch_size=2)
    mixed = realism_scores(ckpt, images, labels, device="cpu", batch_size=12)
    np.testing.assert_allclose(alone, mixed[:4], rtol=1e-6)  # chunk and batch mates irrelevant

    _, _, units = load_nets(ckpt, torch.device("cpu"))
    gens, critics = [units[0]["G"]], [units[0]["D"]]
    trained_mean = critics[0].convs[3].running_mean.clone()  # (width/4,): real and fake mixed
    args = load_checkpoint(ckpt)["model_args"]
    recalibrate_batch_norm(critics[0], gens[0], args, 0, torch.device("cpu"))
    z = sample_z(REFERENCE_FAKES, args["z_dim"], args["z_dist"], make_generator(REFERENCE_SEED))
    classes = torch.arange(REFERENCE_FAKES) % 3
    with torch.no_grad():
        pre_norm = critics[0].convs[:3](gens[0](z, classes))  # (512, width/4, 4, 4)
    expected = pre_norm.mean(dim=(0, 2, 3))
    torch.testing.assert_close(critics[0].convs[3].running_mean, expected, rtol=1e-4, atol=1e-5)
    assert (trained_mean - expected).norm() > 0.05 * expected.norm()  # recalibration changed it
    assert not critics[0].training
