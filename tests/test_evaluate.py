"""Independent fidelity (ganaug.evaluate): extractor cache, leakage, equal n, scale sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import learnable_imageset
from ganaug import InputError, evaluate
from ganaug.config import Config, load_config
from ganaug.data import ImageSet

FAST = {"extractor": "resnet18", "epochs": 1, "batch_size": 16, "kid_subset_size": 20}


def _cfg(**fidelity: object) -> Config:
    fidelity = {**FAST, "kid_subsets": 5, **fidelity}
    return Config().replace(fidelity=fidelity, runtime={"device": "cpu"})


def _state(extractor: evaluate.Extractor) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in extractor.model.state_dict().items()}


def _same_state(a: evaluate.Extractor, b: evaluate.Extractor) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


def _with_splits(real: ImageSet, val: np.ndarray, test: np.ndarray) -> ImageSet:
    images = {"train": real.images["train"], "val": val, "test": test}
    return ImageSet(images, dict(real.labels), real.class_names, dict(real.meta), {})


@pytest.fixture(scope="module")
def real() -> ImageSet:
    return learnable_imageset(n=40, size=16, classes=3, seed=0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained(real: ImageSet, cache_dir: Path) -> evaluate.Extractor:
    return evaluate.load_or_train_extractor(real, _cfg(), cache_dir, "cpu")


def test_config_section_parses_validates_and_hashes():
    cfg = load_config("smoke", ["fidelity.n=20", "fidelity.extractor=resnet18"])
    assert (cfg.fidelity.n, cfg.fidelity.extractor) == (20, "resnet18")
    assert Config().fidelity.extractor == "densenet121"
    assert cfg.section_hash("fidelity") != load_config("smoke").section_hash("fidelity")
    assert cfg.section_hash("select") == load_config("smoke").section_hash("select")
    for bad in ("fidelity.n=1", "fidelity.batch_size=1", "fidelity.lr=0", "fidelity.nosuch=3"):
        with pytest.raises(InputError, match="fidelity"):
            load_config("smoke", [bad])


def test_second_call_loads_the_cache_instead_of_training(real, trained, cache_dir, monkeypatch):
    path = cache_dir / trained.info["cache_file"]
    assert path.is_file() and path.name.startswith("extractor-")
    mtime = path.stat().st_mtime_ns

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again although the cache holds this extractor")

    monkeypatch.setattr(evaluate, "train_from_scratch", no_training)
    again = evaluate.load_or_train_extractor(real, _cfg(), cache_dir, "cpu")
    assert again.info == trained.info
    assert _same_state(again, trained)
    images = real.images["test"][:8]
    np.testing.assert_array_equal(again.features(images), trained.features(images))
    # evaluation-only settings reuse the extractor; training settings key another file
    reused = evaluate.load_or_train_extractor(real, _cfg(n=10, draw_seed=3), cache_dir, "cpu")
    assert reused.info["cache_file"] == path.name
    assert path.stat().st_mtime_ns == mtime
    data_hash = trained.info["data_hash"]
    for other in (_cfg(seed=1), _cfg(epochs=2), _cfg(extractor="resnet50")):
        assert f"extractor-{evaluate.extractor_key(other, data_hash)}.pt" != path.name


def test_other_train_data_gives_another_cache_file(real, trained, cache_dir):
    images = real.images["train"].copy()
    images[0, 0, 0, 0] ^= 1  # one pixel value
    other = ImageSet({**real.images, "train": images}, real.labels, real.class_names, real.meta)
    assert evaluate.train_data_hash(other) != trained.info["data_hash"]
    relabelled = dict(real.labels, train=np.roll(real.labels["train"], 1))
    moved = ImageSet(real.images, relabelled, real.class_names, real.meta)
    assert evaluate.train_data_hash(moved) != trained.info["data_hash"]
    new = evaluate.load_or_train_extractor(other, _cfg(), cache_dir, "cpu")
    assert new.info["cache_file"] != trained.info["cache_file"]
    assert (cache_dir / new.info["cache_file"]).is_file()
    assert not _same_state(new, trained)


def test_unreadable_cache_file_is_trained_again(real, trained, tmp_path):
    path = tmp_path / trained.info["cache_file"]
    path.write_bytes(b"not a checkpoint")
    again = evaluate.load_or_train_extractor(real, _cfg(), tmp_path, "cpu")
    assert _same_state(again, trained)
    assert path.stat().st_size > 1000


def test_extractor_never_sees_val_or_test(real, trained, tmp_path):
    shape = real.images["val"].shape
    garbage = _with_splits(real, np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8))
    other_val = learnable_imageset(n=40, size=16, classes=3, seed=7)
    other = _with_splits(real, other_val.images["val"], other_val.images["test"])
    train_only = ImageSet(
        {"train": real.images["train"]},
        {"train": real.labels["train"]},
        real.class_names,
        {"source_splits": {"train": ["train"]}},
    )
    got = [
        evaluate.load_or_train_extractor(data, _cfg(), tmp_path / name, "cpu")
        for name, data in (("garbage", garbage), ("other", other), ("train_only", train_only))
    ]
    for extractor in got:
        assert extractor.info == trained.info
        assert _same_state(extractor, trained)


def test_train_split_derived_from_test_is_refused(real, tmp_path):
    leaky = ImageSet(
        real.images, real.labels, real.class_names, {"source_splits": {"train": ["test"]}}
    )
    with pytest.raises(InputError, match="leakage"):
        evaluate.load_or_train_extractor(leaky, _cfg(), tmp_path, "cpu")
    with pytest.raises(InputError, match="fidelity.extractor"):
        evaluate.load_or_train_extractor(real, _cfg(extractor="vgg"), tmp_path, "cpu")
    assert not list(tmp_path.iterdir())


def test_equal_draw_is_seeded_and_without_replacement():
    a, b = evaluate.equal_draw(50, 30, 20, seed=0)
    assert len(a) == len(b) == 20
    assert len(set(a.tolist())) == 20 and len(set(b.tolist())) == 20
    assert a.max() < 50 and b.max() < 30
    again = evaluate.equal_draw(50, 30, 20, seed=0)
    np.testing.assert_array_equal(a, again[0])
    np.testing.assert_array_equal(b, again[1])
    assert not np.array_equal(a, evaluate.equal_draw(50, 30, 20, seed=1)[0])


def test_compare_sets_uses_equal_n(real, trained):
    train = real.images["train"], real.labels["train"]
    fakes = {"raw": (train[0][:30], train[1][:30]), "selected": (train[0][5:30], train[1][5:30])}
    smallest = evaluate.compare_sets(trained, real, fakes, _cfg())
    # every set, and the floor, is compared at the smallest set's n: raw's 30 drawn down to 25
    for name, size in (("raw", 30), ("selected", 25)):
        for split in ("train", "val", "test"):
            block = smallest["sets"][name][f"vs_{split}"]
            assert block["n"] == block["n_real"] == 25
            assert block["available"] == {"real": 40, "fake": size}
    assert all(block["n"] == 25 for block in smallest["floor"].values())
    alone = evaluate.compare_sets(trained, real, {"raw": fakes["raw"]}, _cfg())
    assert alone["sets"]["raw"]["vs_test"]["n"] == 30
    assert all(block["n"] == 30 for block in alone["floor"].values())
    fixed = evaluate.compare_sets(trained, real, fakes, _cfg(n=20))
    blocks = [*fixed["floor"].values()] + [b for s in fixed["sets"].values() for b in s.values()]
    assert {(b["n"], b["n_real"]) for b in blocks} == {(20, 20)}
    assert fixed["settings"]["n"] == 20
    # a set smaller than fidelity.n is skipped with a reason, the others still compared
    partial = evaluate.compare_sets(trained, real, fakes, _cfg(n=28))
    assert partial["sets"]["raw"]["vs_train"]["n"] == 28
    skipped = partial["sets"]["selected"]["vs_train"]
    assert skipped["n"] is None and "25 fake" in skipped["skipped"]


def test_identical_set_scores_near_zero_and_noise_far_away(real, trained):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, real.images["train"].shape, dtype=np.uint8)
    fakes = {
        "copy": (real.images["train"], real.labels["train"]),
        "noise": (noise, real.labels["train"]),
    }
    result = evaluate.compare_sets(trained, real, fakes, _cfg())
    floor = result["floor"]["train_vs_test"]["fid"]
    copy, noisy = result["sets"]["copy"]["vs_train"], result["sets"]["noise"]["vs_train"]
    assert floor > 0
    assert copy["fid"] < 1e-6 * floor
    assert copy["precision"] == copy["recall"] == copy["coverage"] == 1.0
    assert noisy["fid"] > 5 * floor
    assert noisy["fid"] > 5 * result["sets"]["copy"]["vs_test"]["fid"]
    assert all(v is None or isinstance(v, (str, int, float)) for v in _leaves(result))
    assert set(result) == {"extractor", "note", "settings", "sets", "floor"}
    assert result["extractor"]["name"] == "resnet18" and result["extractor"]["n_train"] == 40
    assert "real train split only" in result["note"]


def test_fake_of_another_shape_is_refused(real, trained):
    small = np.zeros((10, 8, 8, 3), np.uint8)
    with pytest.raises(InputError, match="fake set 'small'"):
        evaluate.compare_sets(trained, real, {"small": (small, np.zeros(10, np.int64))}, _cfg())
