"""The command line: real data in, files and summaries out; bad input gives exit 2 and one line."""

from pathlib import Path

import numpy as np
import pytest

from ganaug.data import read_npz


def test_data_and_augment_on_real_file(tmp_path: Path, retina_npz: Path, cli, capsys):
    real = tmp_path / "real.npz"
    assert cli(["data", "--data", retina_npz, "--out", real, "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "train: 1080 images 64x64x3, classes 486/128/206/194/66" in out
    assert (tmp_path / "real.config.yaml").is_file()
    classic = tmp_path / "classic.npz"
    assert cli(["augment", "--data", real, "--out", classic, "--seed", "7"]) == 0
    assert "train: 4320 images" in capsys.readouterr().out
    data = read_npz(classic)
    assert data.class_counts() == [4 * c for c in (486, 128, 206, 194, 66)]
    assert data.meta["seed"] == 7
    assert (tmp_path / "classic.preview.png").is_file()
    # nothing is overwritten silently
    before = classic.stat().st_mtime_ns
    assert cli(["augment", "--data", real, "--out", classic]) == 2
    assert classic.stat().st_mtime_ns == before
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["data", "--data", "{tmp}/missing.npz", "--out", "{tmp}/o.npz"],
            "missing.npz: file not found",
        ),
        (["data", "--data", "{tmp}/text.npz", "--out", "{tmp}/o.npz"], "text.npz: not an npz"),
        (["data", "--data", "retinamnistx", "--out", "{tmp}/o.npz"], "MedMNIST flag"),
        (
            ["data", "--data", "{tiny}", "--out", "{tmp}/o.npz", "--set", "data.size=big"],
            "data.size",
        ),
        (["data", "--data", "{tiny}", "--out", "{tmp}/o.npz", "--profile", "nope"], "nope"),
        (["augment", "--data", "{tmp}/object.npz", "--out", "{tmp}/o.npz"], "object arrays"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, tiny_npz, cli, capsys, args, needle):
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "object.npz", train_images=np.array([None, 1], dtype=object))
    argv = [a.format(tmp=tmp_path, tiny=tiny_npz) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
