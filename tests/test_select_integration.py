"""Selection with the real parts: the classify labeller, the Inception extractor, the GAN critic,
and `ganaug select` end to end on a smoke GAN trained on a slice of RetinaMNIST."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug import InputError
from ganaug import select as sel
from ganaug.config import load_config
from ganaug.data import ImageSet, read_npz, write_npz
from ganaug.metrics import frechet_distance, inception_features
from test_select import config, raw_set, real_set


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: a second intra-op thread only contends with the other test processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_labeller_trains_reproducibly_and_selection_is_deterministic(tmp_path):
    cfg = config("select.labeller_epochs=1", "select.k=9")
    first = sel.train_labeller(real_set(), cfg, torch.device("cpu"))
    probs, feats = first.predict(raw_set().images["train"])
    assert probs.shape == (30, 3) and feats.shape == (30, 512)
    assert np.allclose(probs.sum(1), 1.0) and "resnet18" in first.name
    state = torch.random.get_rng_state()
    for name in ("one", "two"):
        sel.select_samples(raw_set(), real_set(), cfg, tmp_path / name, device="cpu")
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    for name in ("selection.csv", "fidelity.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_inception_features_from_a_local_weights_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception.pt"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    model = sel.load_inception(path)
    images = real_set().images["train"][:4]
    feats = inception_features(model, images, size=75)
    assert feats.shape == (4, 2048) and np.isfinite(feats).all()
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not torchvision inception_v3"):
        sel.load_inception(tmp_path / "bad.pt")


def small_real(retina_npz: Path, tmp_path: Path, cli) -> Path:
    """RetinaMNIST at the smoke size (32 px), cut to 90 train / 10 val / 40 test images."""
    full = tmp_path / "full.npz"
    assert cli(["data", "--data", retina_npz, "--out", full, "--profile", "smoke", "--quiet"]) == 0
    data = read_npz(full, required=("train", "val", "test"))
    cut = {"train": 90, "val": 10, "test": 40}
    images = {s: data.images[s][:n] for s, n in cut.items()}
    labels = {s: data.labels[s][:n] for s, n in cut.items()}
    path = tmp_path / "real.npz"
    write_npz(path, ImageSet(images, labels, data.class_names, data.meta))
    return path


@pytest.mark.slow
def test_cli_select_end_to_end_on_a_smoke_gan(tmp_path, retina_npz, cli, capsys):
    from ganaug.generators.loop import train_gan
    from ganaug.generators.sample import sample_images

    real_path = small_real(retina_npz, tmp_path, cli)
    real = read_npz(real_path)
    ckpt = train_gan(real, load_config("smoke", ["runtime.device=cpu"]), tmp_path / "gan")
    raw = sample_images(ckpt, 60, seed=5, device="cpu")
    write_npz(tmp_path / "raw.npz", raw)
    out = tmp_path / "sel" / "synthetic.npz"
    args = ["select", "--samples", tmp_path / "raw.npz", "--real", real_path, "--out", out]
    args += ["--k", "20", "--checkpoint", ckpt, "--profile", "smoke", "--device", "cpu"]
    args += ["--trained-on", real_path]  # this GAN trained on the originals themselves
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert "kept 20 of 60" in printed or "short of quota" in printed
    data = read_npz(out)
    kept = data.meta["kept_counts"]
    assert len(data.labels["train"]) == sum(kept.values()) <= 20
    for name, quota in data.meta["quota_counts"].items():
        assert quota == 4 and kept[name] + data.meta["shortfall"].get(name, 0) == 4
    assert data.meta["source_splits"] == {"train": ["synthetic"]}
    seeds = raw.extras["train_seeds"][data.extras["train_raw_index"]]
    assert np.array_equal(data.extras["train_seeds"], seeds)
    with open(out.parent / "selection.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and all(r["critic"] not in ("", "nan") for r in rows)
    assert all(r["nn_pixel_trained"] == r["nn_pixel"] for r in rows)
    assert sum(r["kept"] == "yes" for r in rows) == len(data.labels["train"])
    fid = json.loads((out.parent / "fidelity.json").read_text())
    assert fid["raw"]["vs_test"]["overall"]["n"] == 60
    assert fid["selected"]["vs_train"]["overall"]["n"] == len(data.labels["train"])
    assert fid["memorisation"]["trained_on"]["raw"] == fid["memorisation"]["raw"]
    for name in ("memorisation.png", "memorisation_trained_on.png", "selected_contact.png"):
        assert (out.parent / name).stat().st_size > 0
    assert cli(args) == 2 and "--force" in capsys.readouterr().err  # no silent overwrite
    # the leakage guard, from the command line: one line, exit 2
    leaky = read_npz(real_path)
    leaky.meta["source_splits"] = {"train": ["train", "test"]}
    write_npz(tmp_path / "leaky.npz", leaky)
    args[args.index(real_path)] = tmp_path / "leaky.npz"
    assert cli([*args, "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test split" in err and len(err.splitlines()) == 1
