"""The bad-input corpus: every malformed file, folder, config and checkpoint the commands refuse.

`write_corpus(folder)` writes each case (and the good companion files the commands need beside
it) into `folder` and returns the cases; nothing binary is committed. Run it by hand to look at
the files: `python tests/bad_inputs/make_corpus.py /tmp/corpus`.

Each case has a `kind` saying which commands read it (tests/test_bad_inputs.py maps kinds to
command lines), the path to feed them, and `needle`: what the one-line error must contain
besides the file's name.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SIZE, CLASSES, N = 16, 3, 12  # 16 x 16 RGB images, 3 classes, 12 per split
MARKER = "code_ran"  # the pickled checkpoint makes this directory if its code ever runs


@dataclass(frozen=True)
class Case:
    name: str
    # npz | folder | profile | set | option | seed-option | select-k | checkpoint |
    # gan-checkpoint | classifier-for-gan | gan-for-classify | out-is-dir | out-is-file |
    # out-under-file | run-dir | set-vs-samples
    kind: str
    path: Path  # the bad input (file or folder); for `set`, the --set item; options: `--n=0`
    needle: str  # the problem, as the error message says it
    names: str  # what the message must name: the file (its name), key or value


# ---------------------------------------------------------------------------------------------
# good companions


def good_arrays(n: int = N, splits: tuple[str, ...] = ("train", "val", "test")) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in splits:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(n, dtype=np.int64) % CLASSES
    arrays["class_names"] = np.array([f"c{i}" for i in range(CLASSES)])
    arrays["meta"] = np.array(json.dumps({"source_splits": {s: [s] for s in splits}}))
    return arrays


def write_good(folder: Path) -> dict[str, Path]:
    """good.npz (train/val/test) and samples.npz (synthetic train split with seeds)."""
    np.savez(folder / "good.npz", **good_arrays())
    samples = good_arrays(splits=("train",))
    samples["meta"] = np.array(json.dumps({"source_splits": {"train": ["synthetic"]}}))
    samples["train_seeds"] = np.arange(N, dtype=np.int64)
    np.savez(folder / "samples.npz", **samples)
    return {"good": folder / "good.npz", "samples": folder / "samples.npz"}


# ---------------------------------------------------------------------------------------------
# npz files


def _npz(folder: Path, name: str, **changes) -> Path:
    arrays = good_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def npz_cases(folder: Path) -> list[Case]:
    cases = []

    def add(name: str, path: Path, needle: str) -> None:
        cases.append(Case(name, "npz", path, needle, path.name))

    full = _npz(folder, "whole")
    truncated = folder / "truncated.npz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    add("truncated npz", truncated, "npz")
    text = folder / "notes.npz"
    text.write_text("patient list, not an archive\n")
    add("renamed text file", text, "not an npz")
    objects = np.array([{"label": i} for i in range(N)], dtype=object)
    add("object arrays (pickle)", _npz(folder, "pickled", train_labels=objects), "object arrays")
    add("missing key", _npz(folder, "nolabels", train_labels=None), "missing key 'train_labels'")
    floats = good_arrays()["train_images"].astype(np.float32) / 255
    add("float images", _npz(folder, "float", train_images=floats), "uint8")
    flat = np.zeros((N, SIZE * SIZE), dtype=np.uint8)
    add("wrong rank", _npz(folder, "rank", train_images=flat), "shape")
    empty = np.zeros((0, SIZE, SIZE, 3), dtype=np.uint8)
    zero = _npz(folder, "zero", train_images=empty, train_labels=np.zeros(0, np.int64))
    add("zero images", zero, "zero images")
    wild = np.arange(N, dtype=np.int64) % CLASSES
    wild[3] = 7
    add("label out of range", _npz(folder, "range", train_labels=wild), "outside 0..2")
    short = np.arange(N - 2, dtype=np.int64) % CLASSES
    add("labels of the wrong length", _npz(folder, "length", train_labels=short), "labels for")
    seeds = np.arange(N, dtype=np.float64)
    seeds[2] = np.nan
    add("NaN in a float array", _npz(folder, "nan", train_seeds=seeds), "NaN")
    cases += class_cases(folder)
    return cases


def class_cases(folder: Path) -> list[Case]:
    """npz files whose splits, class names and labels disagree on the classes."""
    cases = []

    def add(name: str, path: Path, needle: str) -> None:
        cases.append(Case(name, "npz", path, needle, path.name))

    # issue 17: train uses classes 3..5, val/test 0..2, and no class list says which is right
    shifted = np.arange(N, dtype=np.int64) % CLASSES + CLASSES
    unknown = _npz(folder, "shifted", train_labels=shifted, class_names=None)
    add("train classes no other split has", unknown, "no other split")
    two = np.arange(N, dtype=np.int64) % 2  # class 2 only in val/test
    add("class without train images", _npz(folder, "notrain", train_labels=two), "no train images")
    names = np.array([f"c{i}" for i in range(CLASSES + 2)])
    add("class_names of another count", _npz(folder, "names5", class_names=names), "5 classes")
    twice = np.array(["c0", "c0", "c2"])
    add("class name given twice", _npz(folder, "twice", class_names=twice), "more than once")
    halves = np.arange(N, dtype=np.float64) % CLASSES
    halves[5] = 1.5
    add("non-integer float labels", _npz(folder, "halves", train_labels=halves), "non-integer")
    return cases


# ---------------------------------------------------------------------------------------------
# image folders


def _png(path: Path, side: int = 6, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, dtype=np.uint8)).save(path)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A valid PNG header claiming side x side pixels (10^10: over PIL's bomb limit), no data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _folder(root: Path) -> Path:
    """root/a/{0,1}.png and root/b/{0,1}.png: a good flat layout to break one thing in."""
    for cls in ("a", "b"):
        for i in range(2):
            _png(root / cls / f"{i}.png", value=50 + 100 * (cls == "b") + i)
    return root


def folder_cases(folder: Path) -> list[Case]:
    cases = []
    root = _folder(folder / "sizes")
    odd = _png(root / "b" / "2.png", side=9)
    cases.append(Case("mismatched image sizes", "folder", root, "make all sizes equal", odd.name))
    root = _folder(folder / "corrupt")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cases.append(Case("corrupt PNG", "folder", root, "unreadable image", "broken.png"))
    root = _folder(folder / "bomb")
    bomb_png(root / "b" / "huge.png")
    cases.append(Case("decompression bomb", "folder", root, "decompression-bomb", "huge.png"))
    root = _folder(folder / "emptyclass")
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("no images here\n")
    cases.append(Case("class folder with no images", "folder", root, "no images", "emptyclass/c"))
    root = _folder(folder / "symlink")
    outside = _png(folder / "outside" / "secret.png")
    (root / "b" / "link.png").symlink_to(outside)
    cases.append(Case("symlink escaping the root", "folder", root, "outside the dataset", "link"))
    root = _folder(folder / "unlisted")
    (root / "classes.txt").write_text("a\nb\n")
    _png(root / "c" / "0.png")
    cases.append(Case("class folder not in classes.txt", "folder", root, "not among", "unlisted/c"))
    root = folder / "valonly"
    for split in ("train", "val", "test"):
        _folder(root / split)
    _png(root / "val" / "c" / "0.png")
    cases.append(Case("val class that train lacks", "folder", root, "not among", "valonly/val/c"))
    root = _folder(folder / "dotdot")
    _png(folder / "escaped" / "0.png")
    (root / "classes.txt").write_text("a\nb\n../escaped\n")
    cases.append(
        Case("'..' class escaping the root", "folder", root, "outside the dataset", "0.png")
    )
    return cases


# ---------------------------------------------------------------------------------------------
# configs


def billion_laughs(path: Path, levels: int = 9) -> Path:
    """A 1 kB YAML whose aliases expand to 10^levels strings (the classic "billion laughs")."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def config_cases(folder: Path) -> list[Case]:
    yaml_file = folder / "typo.yaml"
    yaml_file.write_text("classify:\n  epochs: 2\ngan:\n  widht: 32\n")
    listed = folder / "list.yaml"
    listed.write_text("- gan\n- classify\n")
    huge = folder / "huge.yaml"
    huge.write_text("# padding\n" * 110_000 + "gan:\n  width: 32\n")  # 1.1 MB, over 1 MiB
    laughs = billion_laughs(folder / "laughs.yaml")
    looped = folder / "looped.yaml"
    looped.write_text("gan: &g\n  width: *g\n")
    no_epochs = folder / "no_epochs.yaml"
    no_epochs.write_text("gan:\n  epochs_lr1: 0\n  epochs_lr2: 0\n")
    profile_cases = [
        ("YAML with an unknown key", yaml_file, "gan.widht"),
        ("YAML that is a list, not a mapping", listed, "mapping"),
        ("YAML over 1 MB", huge, "1 MB"),
        ("YAML billion laughs", laughs, "YAML nodes"),
        ("YAML alias inside itself", looped, "YAML nodes"),
        ("GAN of zero epochs", no_epochs, "gan.epochs_lr1 + gan.epochs_lr2"),
    ]
    set_cases = [
        ("--set with a wrong type", "gan.width=wide", "an integer", "gan.width"),
        ("--set of duplicated seeds", "experiment.seeds=0,0", "distinct", "experiment.seeds"),
        ("--set of no seeds", "experiment.seeds=", "at least one seed", "experiment.seeds"),
        ("--set of a negative seed", "classify.seed=-1", ">= 0", "classify.seed"),
        ("--set of a model twice", "experiment.models=resnet18,resnet18", "distinct", "models"),
    ]
    data_set_cases = [  # --set items that contradict another section
        ("--set select.k over gan.n_samples", "set-vs-samples", "select.k=9999", "9999", "samples"),
    ]
    option_cases = [  # options: the value is out of range or more than the input holds
        ("--n of zero images", "option", "--n=0", ">= 1", "--n 0"),
        ("--n negative", "option", "--n=-3", ">= 1", "--n -3"),
        ("--k of zero images", "select-k", "--k=0", ">= 1", "--k 0"),
        ("--k over the samples", "select-k", f"--k={N + 1}", f"the {N} samples", f"--k {N + 1}"),
        ("--seed negative", "seed-option", "--seed=-1", ">= 0", "--seed -1"),
    ]
    return (
        [Case(n, "profile", p, needle, p.name) for n, p, needle in profile_cases]
        + [Case(n, "set", Path(item), needle, key) for n, item, needle, key in set_cases]
        + [
            Case(n, k, Path(item), needle, key)
            for n, k, item, needle, key in option_cases + data_set_cases
        ]
    )


# ---------------------------------------------------------------------------------------------
# checkpoints


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def classifier_checkpoint(path: Path) -> Path:
    """A genuine ganaug classifier last.pt (resnet18, 3 classes): another architecture than a
    GAN or a resnet50, and another config hash than any run here."""
    from ganaug.classify import build_model

    model = build_model("resnet18", CLASSES)
    names = [f"c{i}" for i in range(CLASSES)]
    ckpt = {"model": model.state_dict(), "model_name": "resnet18", "num_classes": CLASSES}
    ckpt.update(in_channels=3, class_names=names, epoch=1, config_hash="0123456789abcdef")
    torch.save(ckpt, path)
    return path


def gan_checkpoint(path: Path) -> Path:
    """A genuine (untrained) smoke-profile GAN checkpoint at twice the smoke width."""
    from ganaug.config import load_config
    from ganaug.generators import FAMILIES
    from ganaug.generators.checkpoint import save_checkpoint
    from ganaug.generators.family import build_units
    from ganaug.runtime import make_generator

    cfg = load_config("smoke", ["gan.width=64", "runtime.device=cpu"])
    wgan = FAMILIES["wgan"]
    args = wgan.model_args((SIZE, SIZE, 3), CLASSES, cfg.gan)
    labels = torch.arange(N) % CLASSES
    units = build_units(wgan, args, cfg.gan, labels, torch.device("cpu"))
    info = {"model_args": args, "config": cfg.to_dict(), "config_hash": cfg.section_hash("gan")}
    info.update(class_names=[f"c{i}" for i in range(CLASSES)], data_fingerprint="0" * 16)
    info.update(source="", epoch=1, step=1, nan_skips=0)
    save_checkpoint(path, wgan, units, make_generator(0), **info)
    return path


def checkpoint_cases(folder: Path) -> list[Case]:
    other = classifier_checkpoint(folder / "resnet18.pt")
    code = folder / "code.pt"
    torch.save({"model": _RunsCode(folder / MARKER)}, code)
    truncated = folder / "truncated.pt"
    truncated.write_bytes(other.read_bytes()[: other.stat().st_size // 2])
    gan = gan_checkpoint(folder / "gan_width64.pt")
    return [
        Case("checkpoint of another architecture", "checkpoint", other, "", other.name),
        Case("checkpoint that is a pickle with code", "checkpoint", code, "", code.name),
        Case("truncated checkpoint", "checkpoint", truncated, "", truncated.name),
        Case("GAN checkpoint of another width", "gan-checkpoint", gan, "", gan.name),
        Case(
            "classifier checkpoint for a GAN command",
            "classifier-for-gan",
            other,
            "classifier checkpoint",
            other.name,
        ),
        Case("GAN checkpoint for classify", "gan-for-classify", gan, "GAN checkpoint", gan.name),
    ]


# ---------------------------------------------------------------------------------------------
# --out paths of the wrong kind


def out_cases(folder: Path) -> list[Case]:
    made = folder / "made_dir"  # a directory where a command writes one file
    made.mkdir()
    (made / "kept.txt").write_text("a user's file\n")
    notes = folder / "notes.txt"  # a file where a command writes a run directory
    notes.write_text("a user's notes\n")
    return [
        Case("--out that is a directory", "out-is-dir", made, "is a directory", made.name),
        Case("--out that is a file", "out-is-file", notes, "is a file", notes.name),
        Case("--out below a file", "out-under-file", notes / "out", "not a directory", "notes.txt"),
    ]


# ---------------------------------------------------------------------------------------------
# run directories (the report's input)


def _metrics() -> dict:
    block = {"accuracy": 0.5, "auc": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5, "qwk": 0.0}
    protocol = {"epoch": 1, "test_pred": [0, 1, 2], "test": {**block, "confusion": [[1]]}}
    return {"seed": 0, "test_labels": [0, 1, 2], "last": protocol, "best_val": protocol}


def run_dir_cases(folder: Path) -> list[Case]:
    cases = []
    cell = Path("classify/none/resnet18/seed0/metrics.json")
    text = json.dumps(_metrics())
    for name, body, needle in (
        ("truncated metrics.json", text[: len(text) // 2], "unreadable metrics.json"),
        (
            "predictions of the wrong length",
            text.replace('[0, 1, 2], "test"', '[0], "test"'),
            "differ in length",
        ),
    ):
        root = folder / name.split()[0]
        (root / cell).parent.mkdir(parents=True)
        (root / cell).write_text(body)
        cases.append(Case(name, "run-dir", root, needle, "metrics.json"))
    return cases


def write_corpus(folder: Path) -> tuple[list[Case], dict[str, Path]]:
    """Write every case and the good companions into `folder`: (cases, companions)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = write_good(folder)
    cases = npz_cases(folder) + folder_cases(folder) + config_cases(folder)
    cases += checkpoint_cases(folder) + out_cases(folder) + run_dir_cases(folder)
    good["gan_checkpoint"] = folder / "gan_width64.pt"  # a valid checkpoint for `gan sample`
    return cases, good


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs_corpus")
    for case in write_corpus(out)[0]:
        print(f"{case.kind:15} {case.name:40} {case.path}")
