import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_imageset
from ganaug import InputError
from ganaug.config import load_config
from ganaug.data import (
    convert_channels,
    load_spec,
    read_npz,
    require_train_only,
    resize_images,
    write_npz,
)


def test_resize_matches_pil_bicubic_and_keeps_dtype():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    out = resize_images(images, 64)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    ref = np.asarray(Image.fromarray(images[1]).resize((64, 64), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out[1], ref)
    bilinear = np.asarray(Image.fromarray(images[1]).resize((64, 64), Image.Resampling.BILINEAR))
    assert not np.array_equal(out[1], bilinear)


def test_resize_grayscale_keeps_one_channel():
    images = np.random.default_rng(2).integers(0, 256, (2, 10, 10, 1), dtype=np.uint8)
    assert resize_images(images, 16).shape == (2, 16, 16, 1)


def test_channel_conversion_both_ways():
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 2, 2, 1) and gray[0, 0, 0, 0] == 76  # PIL's L of pure red
    assert convert_channels(gray, 3).shape == (1, 2, 2, 3)
    assert convert_channels(rgb, 0) is rgb


def test_contract_round_trip(tmp_path: Path):
    data = make_imageset(channels=1)
    data.extras["train_seeds"] = np.arange(20, dtype=np.int64)
    write_npz(tmp_path / "x.npz", data)
    back = read_npz(tmp_path / "x.npz")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(back.images[split], data.images[split])
        np.testing.assert_array_equal(back.labels[split], data.labels[split])
        assert back.labels[split].dtype == np.int64
    assert back.class_names == data.class_names and back.meta == data.meta
    np.testing.assert_array_equal(back.extras["train_seeds"], np.arange(20))
    assert not list(tmp_path.glob(".*tmp"))


def test_real_retinamnist_to_64(retina_npz: Path):
    cfg = load_config("quick", [f"data.spec={retina_npz}"])
    data = load_spec(cfg)
    assert {s: len(data.images[s]) for s in data.splits} == {"train": 1080, "val": 120, "test": 400}
    assert data.image_shape == (64, 64, 3)
    assert data.class_counts("train") == [486, 128, 206, 194, 66]
    assert data.meta["source_sha256"].startswith("254915f5f0a2")
    assert data.meta["source_splits"] == {"train": ["train"], "val": ["val"], "test": ["test"]}
    assert data.num_classes == 5


def test_grayscale_npz_end_to_end_and_forced_rgb(tmp_path: Path):
    write_npz(tmp_path / "g.npz", make_imageset(channels=1, size=10))
    cfg = load_config("smoke", [f"data.spec={tmp_path / 'g.npz'}", "data.size=16"])
    assert load_spec(cfg).image_shape == (16, 16, 1)
    cfg3 = cfg.replace(data={"channels": 3})
    assert load_spec(cfg3).image_shape == (16, 16, 3)


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _good_arrays(n: int = 4) -> dict:
    images = np.zeros((n, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    return {
        f"{s}_{k}": v
        for s in ("train", "val", "test")
        for k, v in (("images", images), ("labels", labels))
    }


def _bad_npz_cases(tmp: Path):
    yield "missing", tmp / "nope.npz", "file not found"
    text = tmp / "text.npz"
    text.write_text("hello")
    yield "not zip", text, "not an npz"
    trunc = tmp / "trunc.npz"
    _save(tmp / "full.npz", **_good_arrays())
    trunc.write_bytes((tmp / "full.npz").read_bytes()[:300])
    yield "truncated", trunc, "npz"
    arrays = _good_arrays()
    arrays["train_labels"] = np.array([{"a": 1}] * 4, dtype=object)
    yield "object", _save(tmp / "obj.npz", **arrays), "object arrays"
    arrays = _good_arrays()
    del arrays["train_images"]
    yield "no train", _save(tmp / "notrain.npz", **arrays), "train_images"
    arrays = _good_arrays()
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    yield "float", _save(tmp / "float.npz", **arrays), "uint8"
    arrays = _good_arrays()
    arrays["train_images"] = np.zeros((4, 8), dtype=np.uint8)
    yield "rank", _save(tmp / "rank.npz", **arrays), "shape"
    arrays = _good_arrays()
    arrays["train_labels"] = np.array([0, 1, 7, -1])
    arrays["class_names"] = np.array(["a", "b"])
    yield "range", _save(tmp / "range.npz", **arrays), "outside 0..1"
    arrays = _good_arrays()
    arrays["train_labels"] = np.array([0, 1])
    yield "length", _save(tmp / "len.npz", **arrays), "2 labels for 4 images"
    arrays = _good_arrays()
    arrays["val_images"] = np.zeros((0, 8, 8, 3), dtype=np.uint8)
    arrays["val_labels"] = np.zeros((0,), dtype=np.int64)
    yield "zero", _save(tmp / "zero.npz", **arrays), "zero images"
    arrays = _good_arrays()
    arrays["train_seeds"] = np.array([0.0, np.nan, 1.0, 2.0])
    yield "nan", _save(tmp / "nan.npz", **arrays), "NaN"


def test_every_bad_npz_is_one_clear_input_error(tmp_path: Path):
    cases = list(_bad_npz_cases(tmp_path))
    assert len(cases) == 11
    for name, path, needle in cases:
        with pytest.raises(InputError) as err:
            read_npz(path, required=("train", "val", "test"))
        message = str(err.value)
        assert str(path) in message, name
        assert needle in message, (name, message)
        assert "\n" not in message, name


def test_unknown_flag_and_offline_cache_miss(tmp_path: Path):
    with pytest.raises(InputError, match="not a file, folder or MedMNIST flag"):
        load_spec(load_config("smoke", ["data.spec=retinamnistx"]))
    cfg = load_config(
        "smoke",
        [
            "data.spec=retinamnist",
            f"data.medmnist_root={tmp_path}",
            "data.download=false",
            "data.size=64",
        ],
    )
    with pytest.raises(InputError, match=f"retinamnist_64.npz is not in {tmp_path}"):
        load_spec(cfg)


def test_medmnist_cache_hit(tmp_path: Path, retina_npz: Path):
    (tmp_path / "retinamnist.npz").write_bytes(retina_npz.read_bytes())
    cfg = load_config(
        "smoke",
        [
            "data.spec=retinamnist",
            f"data.medmnist_root={tmp_path}",
            "data.download=false",
            "data.size=28",
        ],
    )
    data = load_spec(cfg)
    assert len(data.images["train"]) == 1080 and data.class_names[0].startswith("0")


def _write_png(path: Path, value: int, size: int = 6, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=None).save(path)


def test_image_folder_with_splits_keeps_class_order(tmp_path: Path):
    root = tmp_path / "set"
    for split in ("train", "val", "test"):
        for k, name in enumerate(("normal", "disease")):
            for i in range(3):
                _write_png(root / split / name / f"{i}.png", 40 * k + i)
    (root / "classes.txt").write_text("normal\ndisease\n")
    data = load_spec(load_config("smoke", [f"data.spec={root}", "data.size=8"]))
    assert data.class_names == ("normal", "disease")
    assert data.image_shape == (8, 8, 3)
    assert data.class_counts("val") == [3, 3]


def test_image_folder_without_splits_is_stratified(tmp_path: Path):
    root = tmp_path / "flat"
    for k, name in enumerate(("a", "b")):
        for i in range(10):
            _write_png(root / name / f"{i}.png", 10 * k + i, mode="L")
    cfg = load_config("smoke", [f"data.spec={root}", "data.size=8"])
    data = load_spec(cfg)
    assert data.image_shape == (8, 8, 1)
    assert data.class_counts("train") == [7, 7] and data.class_counts("test") == [2, 2]
    again = load_spec(cfg)
    np.testing.assert_array_equal(data.images["test"], again.images["test"])


def test_bad_image_folders(tmp_path: Path):
    one = tmp_path / "one"
    _write_png(one / "a" / "0.png", 1)
    with pytest.raises(InputError, match="need at least two"):
        load_spec(load_config("smoke", [f"data.spec={one}"]))
    broken = tmp_path / "broken"
    _write_png(broken / "a" / "0.png", 1)
    (broken / "b").mkdir()
    (broken / "b" / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="bad.png: unreadable image"):
        load_spec(load_config("smoke", [f"data.spec={broken}"]))
    empty = tmp_path / "empty"
    _write_png(empty / "a" / "0.png", 1)
    (empty / "b").mkdir()
    with pytest.raises(InputError, match="class folder has no images"):
        load_spec(load_config("smoke", [f"data.spec={empty}"]))
    sizes = tmp_path / "sizes"
    _write_png(sizes / "a" / "0.png", 1, size=6)
    _write_png(sizes / "b" / "0.png", 1, size=7)
    with pytest.raises(InputError, match="make all sizes equal"):
        load_spec(load_config("smoke", [f"data.spec={sizes}"]))
    escape = tmp_path / "escape"
    _write_png(escape / "a" / "0.png", 1)
    _write_png(tmp_path / "outside.png", 1)
    (escape / "b").mkdir()
    (escape / "b" / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(InputError, match="outside the dataset root"):
        load_spec(load_config("smoke", [f"data.spec={escape}"]))


def test_leakage_guard_refuses_val_or_test_derived(tmp_path: Path):
    data = make_imageset()
    require_train_only(data, "x.npz", "GAN training")
    data.meta["source_splits"]["train"] = ["train", "test"]
    with pytest.raises(InputError, match="derive from the test split"):
        require_train_only(data, "x.npz", "GAN training")
    write_npz(tmp_path / "leak.npz", data)
    meta = json.loads(str(np.load(tmp_path / "leak.npz")["meta"]))
    assert meta["source_splits"]["train"] == ["train", "test"]
    assert zipfile.is_zipfile(tmp_path / "leak.npz")


# ---------------------------------------------------------------------------------------------
# consistency across splits, class names and labels (issue 17)


def _split_arrays(train: list, val: list, test: list, **extra) -> dict:
    arrays = {}
    for split, labels in (("train", train), ("val", val), ("test", test)):
        arrays[f"{split}_images"] = np.zeros((len(labels), 8, 8, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array(labels)
    return {**arrays, **extra}


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as err:
        read_npz(path, required=("train", "val", "test"))
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def test_train_classes_no_other_split_has_are_refused(tmp_path: Path, cli, capsys):
    """Issue 17: train uses classes 7-11, val/test 0-4, no class list; was accepted."""
    arrays = _split_arrays([7, 8, 9, 10, 11], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
    path = _save(tmp_path / "shifted.npz", **arrays)
    message = _refusal(path)
    assert "train_labels use classes 7, 8, 9, 10, 11 that no other split (val/test)" in message
    out = tmp_path / "real.npz"
    assert cli(["data", "--data", path, "--out", out, "--profile", "smoke"]) == 2
    assert "no other split" in capsys.readouterr().err and not out.exists()
    assert not (tmp_path / "real.config.yaml").exists()


def test_class_without_train_images_is_refused(tmp_path: Path):
    names = np.array(["normal", "mild", "severe"])
    arrays = _split_arrays([0, 1, 0, 1], [0, 1, 2], [2, 2, 0], class_names=names)
    message = _refusal(_save(tmp_path / "x.npz", **arrays))
    assert "class 2 ('severe') has no train images, only val/test images" in message


def test_class_names_of_another_count_are_refused(tmp_path: Path):
    names = np.array(["a", "b", "c", "d"])
    arrays = _split_arrays([0, 1, 2], [0, 1, 2], [0, 1, 2], class_names=names)
    message = _refusal(_save(tmp_path / "x.npz", **arrays))
    assert "class_names gives 4 classes but no split has a label 3" in message
    gap = _split_arrays([0, 2], [0, 2], [2, 0])  # no class list: class 1 is a hole
    assert "number the classes 0..K-1" in _refusal(_save(tmp_path / "gap.npz", **gap))
    meta = np.array(json.dumps({"num_classes": 5}))
    arrays = _split_arrays([0, 1, 2], [0, 1, 2], [0, 1, 2], class_names=names[:3], meta=meta)
    assert "meta num_classes is 5" in _refusal(_save(tmp_path / "meta.npz", **arrays))
    arrays = _split_arrays([0, 1, 2], [0, 1], [2], class_names=np.array(["a", "b", "a"]))
    assert "'a' more than once" in _refusal(_save(tmp_path / "twice.npz", **arrays))


def test_train_only_file_may_use_some_classes(tmp_path: Path):
    """Samples of an unconditional GAN are all class 0 of five: no val/test to agree with."""
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    names = np.array([f"c{i}" for i in range(5)])
    path = _save(
        tmp_path / "raw.npz", train_images=images, train_labels=np.zeros(4), class_names=names
    )
    data = read_npz(path)
    assert data.num_classes == 5 and data.class_counts() == [4, 0, 0, 0, 0]


def test_integral_float_labels_are_converted_others_refused(tmp_path: Path):
    arrays = _split_arrays([0.0, 1.0, 2.0], [0, 1, 2], [2.0, 1.0, 0.0])
    data = read_npz(_save(tmp_path / "whole.npz", **arrays), required=("train", "val", "test"))
    assert data.labels["train"].dtype == np.int64
    np.testing.assert_array_equal(data.labels["test"], [2, 1, 0])
    for name, bad in (("half", 1.5), ("nan", np.nan), ("inf", np.inf)):
        arrays = _split_arrays([0.0, bad, 2.0], [0, 1, 2], [0, 1, 2])
        message = _refusal(_save(tmp_path / f"{name}.npz", **arrays))
        assert "'train_labels' holds non-integer values (row 1:" in message


def test_image_folder_classes_must_agree(tmp_path: Path):
    flat = tmp_path / "flat"
    for name in ("a", "b", "c"):
        _write_png(flat / name / "0.png", 1)
    (flat / "classes.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match=r"flat/c: class folder not among the classes \(a, b\)"):
        load_spec(load_config("smoke", [f"data.spec={flat}"]))
    (flat / "classes.txt").write_text("a\nb\nc\nb\n")
    with pytest.raises(InputError, match="classes.txt: lists b more than once"):
        load_spec(load_config("smoke", [f"data.spec={flat}"]))
    split = tmp_path / "split"
    for part in ("train", "val", "test"):
        for name in ("a", "b"):
            _write_png(split / part / name / "0.png", 1)
    _write_png(split / "test" / "c" / "0.png", 1)
    with pytest.raises(InputError, match="test/c: class folder not among the classes"):
        load_spec(load_config("smoke", [f"data.spec={split}"]))
