"""Selection: quotas, ranking, memorisation, determinism and the leakage guard (stub labeller)."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from ganaug import InputError
from ganaug import select as sel
from ganaug.config import load_config
from ganaug.data import ImageSet, read_npz, write_npz

CENTRES = (20.0, 120.0, 220.0)  # mean brightness of each class's images
TRAIN_LABELLER = sel.train_labeller  # the real one, before any stub replaces it


def brightness_set(levels, labels, seed, meta, extras=None) -> ImageSet:
    """8x8x3 images of the given mean brightness (+-6 noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-6, 7, (len(levels), 8, 8, 3))
    images = np.clip(np.asarray(levels)[:, None, None, None] + noise, 0, 255).astype(np.uint8)
    labels = {"train": np.asarray(labels, dtype=np.int64)}
    return ImageSet({"train": images}, labels, ("a", "b", "c"), meta, extras or {})


def real_set() -> ImageSet:
    labels = np.arange(24) % 3
    real = brightness_set([CENTRES[c] for c in labels], labels, 0, {})
    test = brightness_set([CENTRES[c] + 3 for c in labels], labels, 1, {})
    real.images["test"], real.labels["test"] = test.images["train"], test.labels["train"]
    real.meta = {"stage": "data", "source": "toy", "source_splits": {"train": ["train"]}}
    return real


def raw_set(n=30, labelled=True) -> ImageSet:
    """Generator class i % 3; brightness drifts towards a neighbouring class as i grows."""
    labels = np.arange(n) % 3
    levels = [CENTRES[c] + (i // 3) * (6.0 if c < 2 else -6.0) for i, c in enumerate(labels)]
    meta = {"stage": "gan-sample", "source_splits": {"train": ["synthetic"]}, "labelled": labelled}
    raw = brightness_set(levels, labels if labelled else 0 * labels, 2, meta)
    raw.extras["train_seeds"] = 100 + np.arange(n, dtype=np.int64)
    return raw


def stub_labeller(images: np.ndarray):
    """Probabilities from the distance of the mean brightness to each class centre."""
    x = images.astype(float)
    mean = x.mean(axis=(1, 2, 3))
    logits = -(((mean[:, None] - np.array(CENTRES)[None, :]) / 30.0) ** 2)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    features = np.stack([x[..., 0].mean((1, 2)), x.std(axis=(1, 2, 3)), mean / 2], axis=1)
    return probs / probs.sum(1, keepdims=True), features


@pytest.fixture
def stubbed(monkeypatch):
    """Stub labeller and critic, patched in the modules that look them up."""
    monkeypatch.setattr(
        sel.stage, "train_labeller", lambda real, cfg, device: sel.Labeller("stub", stub_labeller)
    )
    monkeypatch.setattr(
        sel.scores,
        "score_critic",
        lambda ckpt, images, labels, device: -np.arange(len(images), dtype=float),
    )
    monkeypatch.setattr(sel.scores, "has_realism_score", lambda ckpt: True)  # a GAN's checkpoint


def config(*sets):
    base = ["runtime.device=cpu", "select.kid_subsets=3", "select.min_nn_distance=0.005"]
    return load_config("smoke", [*base, *sets])


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quota_counts():
    assert sel.quota_counts("balanced", 10, [5, 5, 5]) == [4, 3, 3]
    assert sel.quota_counts("paper", 443, [1] * 5) == [101, 96, 84, 80, 82]
    assert sum(sel.quota_counts("paper", 40, [1] * 5)) == 40
    # RetinaMNIST train counts: 443 * c / 1080 = 199.35, 52.50, 84.50, 79.57, 27.07
    assert sel.quota_counts("proportional", 443, [486, 128, 206, 194, 66]) == [199, 53, 84, 80, 27]
    assert sel.quota_counts("inverse", 7, [1, 2, 4]) == [4, 2, 1]
    assert sel.quota_counts("inverse", 5, [3, 0, 3]) == [3, 0, 2]
    assert sel.quota_counts("3,3,4", 10, [1, 1, 1]) == [3, 3, 4]
    for quota, k, needle in (
        ("paper", 10, "5 classes"),
        ("3,3", 6, "2 counts"),
        ("3,3,3", 10, "sums"),
    ):
        with pytest.raises(InputError, match=needle):
            sel.quota_counts(quota, k, [1, 1, 1])


def test_ranking_and_top_k_under_quotas():
    assert sel.ordinal_rank(np.array([0.5, 0.9, 0.5, np.nan])).tolist() == [1, 0, 2, 3]
    combined = np.array([3.0, 0.0, 1.0, 2.0, 0.0, 5.0])
    labels = np.array([0, 0, 1, 1, 0, 1])
    eligible = np.array([True, False, True, True, True, True])
    kept = sel.select_top_k(combined, labels, eligible, [2, 1])
    assert kept.tolist() == [True, False, True, False, True, False]


def test_a_registered_score_gets_its_columns_and_enters_the_combined_rank(
    tmp_path, stubbed, monkeypatch
):
    columns = [c for score in sel.SCORES.values() for c in score.columns]
    assert columns == [
        "critic",
        "critic_rank",
        "confidence_rank",
        "knn_realism",
        "knn_realism_rank",
    ]
    with pytest.raises(ValueError, match="SelectConfig"):
        sel.selection_score("sharpness", weight="sharpness_weight")
    # a score preferring dark images, weighted by an existing key
    dark = sel.SelectionScore(
        "darkness", "confidence_weight", lambda inputs: -inputs.images.mean(axis=(1, 2, 3)), True
    )
    monkeypatch.setitem(sel.SCORES, "darkness", dark)
    raw = raw_set()
    sel.select_samples(raw, real_set(), config("select.k=9"), tmp_path)
    rows = read_rows(tmp_path / "selection.csv")
    names = list(rows[0])
    at = names.index("knn_realism_rank")
    assert names[at + 1 : at + 4] == ["darkness", "darkness_rank", "combined_rank"]
    darkest = int(raw.images["train"].mean(axis=(1, 2, 3)).argmin())
    assert rows[darkest]["darkness_rank"] == "0"
    # no checkpoint: the critic is left out, the two weight-1 ranks are averaged
    for row in rows:
        want = (int(row["confidence_rank"]) + int(row["darkness_rank"])) / 2
        assert float(row["combined_rank"]) == want


def test_selection_meets_quotas_and_drops_a_planted_copy(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    raw.images["train"][3] = real.images["train"][9]  # an exact copy of a training image
    out = sel.select_samples(raw, real, config("select.k=9"), tmp_path)
    assert out.class_counts() == [3, 3, 3] and out.meta["shortfall"] == {}
    rows = read_rows(tmp_path / "selection.csv")
    assert len(rows) == 30 and rows[3]["reason"] == "memorised" and rows[3]["kept"] == "no"
    assert rows[3]["nn_pixel"] == "0" and rows[3]["nn_train_index"] == "9"
    assert 3 not in out.extras["train_raw_index"]
    # the best-ranked eligible samples (closest to their class centre) are kept, in index order
    assert out.extras["train_raw_index"].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert out.extras["train_seeds"].tolist() == [100 + i for i in out.extras["train_raw_index"]]
    assert out.meta["source_splits"] == {"train": ["synthetic"]}
    fid = json.loads((tmp_path / "fidelity.json").read_text())
    mem = fid["memorisation"]
    assert mem["raw"]["n_within"] == 1 and mem["selected"]["n_within"] == 0
    assert mem["closest"][0] == {
        "index": 3,
        "seed": 103,
        "train_index": 9,
        "distance": 0.0,
        "kept": False,
    }
    for block in ("raw", "selected"):
        for split in ("vs_train", "vs_test"):
            assert set(fid[block][split]["per_class"]) == {"a", "b", "c"}
            assert fid[block][split]["overall"]["fid"] >= 0
    assert fid["raw"]["vs_train"]["overall"]["n"] == 30
    assert fid["selected"]["vs_train"]["overall"]["n"] == 9
    assert (tmp_path / "memorisation.png").is_file() and (
        tmp_path / "selected_contact.png"
    ).is_file()
    write_npz(tmp_path / "synthetic.npz", out)
    back = read_npz(tmp_path / "synthetic.npz")
    assert np.array_equal(back.images["train"], raw.images["train"][out.extras["train_raw_index"]])


def test_shortfall_is_reported(tmp_path, stubbed, caplog):
    real, raw = real_set(), raw_set()
    raw.images["train"][0] = real.images["train"][0]
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        out = sel.select_samples(raw, real, config("select.k=20", "select.quota=12,5,3"), tmp_path)
    assert out.meta["kept_counts"] == {"a": 9, "b": 5, "c": 3}
    assert out.meta["shortfall"] == {"a": 3}
    assert "class a kept 9 of its quota 12" in caplog.text
    reasons = [r["reason"] for r in read_rows(tmp_path / "selection.csv")]
    assert reasons.count("quota_full") == 30 - 1 - 17


def test_critic_rank_and_agreement_filter(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    # stub critic = -index: with only the critic weighted, each class keeps its lowest indices
    cfg = config("select.k=6", "select.confidence_weight=0", "select.min_nn_distance=0")
    out = sel.select_samples(raw, real, cfg, tmp_path, checkpoint=Path("x.pt"))
    assert out.extras["train_raw_index"].tolist() == [0, 1, 2, 3, 4, 5]
    rows = read_rows(tmp_path / "selection.csv")
    assert float(rows[0]["critic"]) == 0.0 and rows[5]["critic"] == "-5"
    assert [int(r["critic_rank"]) for r in rows[:3]] == [0, 1, 2]
    # brightness drifts 6 per step: late samples leave their class, the labeller disagrees
    disagree = [r["index"] for r in rows if r["agree"] == "no"]
    assert disagree
    cfg = config("select.k=30", "select.require_agreement=true")
    out = sel.select_samples(raw, real, cfg, tmp_path / "agree")
    rows = read_rows(tmp_path / "agree" / "selection.csv")
    assert all(r["reason"] == "disagrees" for r in rows if r["index"] in disagree)
    assert len(out.labels["train"]) == 30 - len(disagree)


def test_unconditional_samples_take_the_labeller_label(tmp_path, stubbed):
    real, raw = real_set(), raw_set(labelled=False)
    out = sel.select_samples(raw, real, config("select.k=30", "select.quota=10,10,10"), tmp_path)
    want = stub_labeller(raw.images["train"])[0].argmax(1)
    rows = read_rows(tmp_path / "selection.csv")
    assert [int(r["label"]) for r in rows] == want.tolist()
    assert {r["agree"] for r in rows} == {""} and {r["gen_label"] for r in rows} == {"-1"}
    assert np.array_equal(out.labels["train"], want[out.extras["train_raw_index"]])
    assert out.meta["label_rule"] == "labeller argmax"


def test_selection_is_deterministic(tmp_path, stubbed):
    cfg = config("select.k=12")
    for name in ("one", "two"):
        sel.select_samples(raw_set(), real_set(), cfg, tmp_path / name)
    for name in ("selection.csv", "fidelity.json", "selected_contact.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_leakage_guard_refuses_val_or_test_derived_data(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    leaky = real_set()
    leaky.meta["source_splits"] = {"train": ["train", "val"]}
    with pytest.raises(InputError, match="val split"):
        sel.select_samples(raw, leaky, config(), tmp_path)
    with pytest.raises(InputError, match="val split"):
        TRAIN_LABELLER(leaky, config(), "cpu")
    raw.meta["source_splits"] = {"train": ["test"]}
    with pytest.raises(InputError, match="test split"):
        sel.select_samples(raw, real, config(), tmp_path)
    assert not (tmp_path / "selection.csv").exists()


def test_bad_inputs_are_one_clear_error(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    small = ImageSet({"train": raw.images["train"][:, :4]}, raw.labels, raw.class_names, raw.meta)
    with pytest.raises(InputError, match="data.size"):
        sel.select_samples(small, real, config(), tmp_path)
    with pytest.raises(InputError, match="5 classes"):
        sel.select_samples(raw, real, config("select.quota=paper"), tmp_path)
    with pytest.raises(InputError, match="file not found"):
        sel.select_samples(raw, real, config("select.inception_weights=/nope.pt"), tmp_path)


def flipped_trained_on(real: ImageSet) -> ImageSet:
    """What the GAN trains on in the pipeline: the originals plus their horizontal flips."""
    train = real.images["train"]
    images = {"train": np.concatenate([train, train[:, :, ::-1]])}
    labels = {"train": np.concatenate([real.labels["train"]] * 2)}
    meta = {"stage": "classic", "source_splits": {"train": ["train"]}}
    return ImageSet(images, labels, real.class_names, meta, {})


def grid_cell(path: Path, row: int, col: int, side: int = 8, pad: int = 2) -> np.ndarray:
    """One image of a save_image_grid PNG."""
    from PIL import Image

    grid = np.asarray(Image.open(path))
    top, left = pad + row * (side + pad), pad + col * (side + pad)
    return grid[top : top + side, left : left + side]


def test_a_flipped_copy_is_caught_only_against_the_set_the_gan_trained_on(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    raw.images["train"][3] = real.images["train"][9][:, ::-1]  # flipped copy of a train image
    cfg = config("select.k=9")
    # against the originals alone the flipped copy is far from every image: it goes unseen
    sel.select_samples(raw, real, cfg, tmp_path / "originals")
    rows = read_rows(tmp_path / "originals" / "selection.csv")
    assert rows[3]["reason"] == "kept" and float(rows[3]["nn_pixel"]) > 0.005
    assert "nn_pixel_trained" not in rows[3] and "nn_trained_index" not in rows[3]
    fid = json.loads((tmp_path / "originals" / "fidelity.json").read_text())
    assert "trained_on" not in fid["memorisation"] and fid["memorisation"]["raw"]["n_within"] == 0
    assert not (tmp_path / "originals" / "memorisation_trained_on.png").exists()
    # checked against the flipped set as well, it is dropped and leads the closest pairs
    trained_on = flipped_trained_on(real)
    out = sel.select_samples(raw, real, cfg, tmp_path / "both", trained_on=trained_on)
    rows = read_rows(tmp_path / "both" / "selection.csv")
    assert rows[3]["reason"] == "memorised" and rows[3]["kept"] == "no"
    assert rows[3]["nn_pixel_trained"] == "0" and rows[3]["nn_trained_index"] == str(24 + 9)
    assert float(rows[3]["nn_pixel"]) > 0.005
    assert all(float(r["nn_pixel_trained"]) <= float(r["nn_pixel"]) for r in rows)
    assert out.extras["train_raw_index"].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert out.meta["n_memorised"] == 1
    mem = json.loads((tmp_path / "both" / "fidelity.json").read_text())["memorisation"]
    assert mem["reference"] == "originals" and mem["raw"]["n_within"] == 0
    assert mem["selected"]["n_within"] == 0
    mine = mem["trained_on"]
    assert mine["reference"] == "trained_on" and mine["threshold"] == 0.005
    assert mine["raw"]["n_within"] == 1 and mine["selected"]["n_within"] == 0
    assert mine["closest"][0] == {
        "index": 3,
        "seed": 103,
        "trained_index": 33,
        "distance": 0.0,
        "kept": False,
    }
    distances = [pair["distance"] for pair in mine["closest"]]
    assert len(distances) == sel.MEMORISATION_PAIRS and distances == sorted(distances)
    # the figure pairs the sample (row 1) with its nearest trained-on image (row 2)
    figure = tmp_path / "both" / "memorisation_trained_on.png"
    assert np.array_equal(grid_cell(figure, 0, 0), raw.images["train"][3])
    assert np.array_equal(grid_cell(figure, 1, 0), trained_on.images["train"][33])
    second = mine["closest"][1]
    assert np.array_equal(grid_cell(figure, 0, 1), raw.images["train"][second["index"]])
    assert np.array_equal(
        grid_cell(figure, 1, 1), trained_on.images["train"][second["trained_index"]]
    )
    first = mem["closest"][0]
    original = grid_cell(tmp_path / "both" / "memorisation.png", 1, 0)
    assert np.array_equal(original, real.images["train"][first["train_index"]])


def test_trained_on_must_be_train_only_and_the_real_image_shape(tmp_path, stubbed):
    real, raw = real_set(), raw_set()
    leaky = flipped_trained_on(real)
    leaky.meta["source_splits"] = {"train": ["train", "val"]}
    with pytest.raises(InputError, match="GAN trained on.*val split"):
        sel.select_samples(raw, real, config(), tmp_path, trained_on=leaky)
    small = flipped_trained_on(real)
    small.images["train"] = small.images["train"][:, :4, :4]
    with pytest.raises(InputError, match=r"trained_on.*\(4, 4, 3\)"):
        sel.select_samples(raw, real, config(), tmp_path, trained_on=small)
    assert not (tmp_path / "selection.csv").exists()


def select_args(tmp_path: Path, real: ImageSet, raw: ImageSet, trained_on: ImageSet) -> list:
    for name, data in (("real", real), ("raw", raw), ("trained_on", trained_on)):
        write_npz(tmp_path / f"{name}.npz", data)
    args = ["select", "--samples", tmp_path / "raw.npz", "--real", tmp_path / "real.npz"]
    args += ["--trained-on", tmp_path / "trained_on.npz", "--out", tmp_path / "sel" / "syn.npz"]
    sets = ("runtime.device=cpu", "select.kid_subsets=3", "select.min_nn_distance=0.005")
    return [*args, "--k", "9", "--profile", "smoke", *[x for s in sets for x in ("--set", s)]]


def test_cli_select_with_trained_on(tmp_path, stubbed, cli, capsys):
    real, raw = real_set(), raw_set()
    raw.images["train"][3] = real.images["train"][9][:, ::-1]
    args = select_args(tmp_path, real, raw, flipped_trained_on(real))
    assert cli([*args, "--quiet"]) == 0
    rows = read_rows(tmp_path / "sel" / "selection.csv")
    names = list(rows[0])
    at = names.index("nn_train_index")
    assert names[at + 1 : at + 3] == ["nn_pixel_trained", "nn_trained_index"]
    assert rows[3]["reason"] == "memorised" and rows[3]["nn_trained_index"] == "33"
    fid = json.loads((tmp_path / "sel" / "fidelity.json").read_text())
    assert fid["memorisation"]["trained_on"]["closest"][0]["index"] == 3
    assert (tmp_path / "sel" / "memorisation_trained_on.png").is_file()
    assert read_npz(tmp_path / "sel" / "syn.npz").meta["n_memorised"] == 1
    capsys.readouterr()
    # a trained-on set of another image size, or no file at all: exit 2, one line, no output
    small = flipped_trained_on(real)
    small.images["train"] = small.images["train"][:, :4, :4]
    args = select_args(tmp_path / "small", real, raw, small)
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--trained-on" in err and "(4, 4, 3)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "small" / "sel").exists()
    args[args.index("--trained-on") + 1] = tmp_path / "nope.npz"
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.npz: file not found" in err and len(err.splitlines()) == 1
