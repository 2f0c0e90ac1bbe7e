"""The time-to-quality bench on a tiny family and a stand-in extractor: every budget mark is
measured once, in order, past its budget, and the table and figure carry the rows."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is a folder beside src/, not an installed package
    sys.path.insert(0, str(REPO))

import bench.time_to_quality as ttq  # noqa: E402

from conftest import make_imageset  # noqa: E402

TINY = [
    "gan.mode=conditional",
    "gan.loss=wgan-gp",
    "gan.width=16",
    "gan.z_dim=8",
    "gan.batch_size=8",
    "gan.n_critic=1",
    "gan.subset=0",
    "runtime.device=cpu",
]


class ChannelStats:
    """A stand-in extractor: per-channel means and standard deviations (6 features)."""

    def features(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float64) / 255
        return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)


def test_every_mark_is_measured_once_in_order_past_its_budget(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(ttq.RECIPES, "tiny", ("smoke", TINY, "tiny conditional WGAN-GP"))
    real = make_imageset(n=32, size=16, classes=3)
    marks = [0.002, 0.004]  # compute minutes: a fraction of a second
    found = ttq.run_family("tiny", real, real, ChannelStats(), marks, tmp_path)
    rows = found["marks"]
    assert [r["mark"] for r in rows] == marks
    assert all(r["minutes"] >= r["mark"] for r in rows)
    assert rows[0]["step"] < rows[1]["step"] and rows[0]["real_images_seen"] > 0
    assert all(math.isfinite(r["fid_test"]) and r["fid_test"] > 0 for r in rows)
    assert all(r["sample_s_per_1000"] > 0 for r in rows)
    assert found["gan"]["width"] == 16 and (tmp_path / "ttq_tiny.png").is_file()

    results = {
        "marks": marks,
        "threads": 1,
        "families": {"tiny": found},
        "real_floor": {"train_vs_test": 1.0, "train_vs_val": 2.0, "val_vs_test": 3.0},
    }
    text = ttq.table(results)
    header, _, tiny, train, val = text.strip().splitlines()
    assert "FID test @ 0.002 min" in header and "FID test @ 0.004 min" in header
    cells = [c.strip() for c in tiny.strip("|").split("|")]
    assert cells[:2] == ["tiny", "tiny conditional WGAN-GP"]
    assert float(cells[3]) == pytest.approx(rows[1]["fid_test"], abs=0.06)
    assert train.startswith("| real train images") and val.startswith("| real val images")
    ttq.figure(results, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_an_unknown_recipe_is_refused(capsys):
    with pytest.raises(SystemExit) as done:
        ttq.main(["--families", "wgan-gp,nope"])
    assert done.value.code == 2 and "unknown recipe 'nope'" in capsys.readouterr().err
