"""The report: Table 1 numbers from hand-made metrics.json, the paired comparison (hierarchical
bootstrap, Holm, verdicts), the grid config.yaml names, figures, HTML."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import make_imageset
from ganaug import InputError
from ganaug.data import ImageSet, write_npz
from ganaug.report import Run, build_report, paired_bootstrap, verdict_sentence
from ganaug.report.figures import fidelity_gain_points, spearman
from ganaug.report.load import source_text

CLASSES = [f"c{i}" for i in range(5)]
# 40 test images: 16 of class 0 (the majority-class floor is 40 %), 6 of each other class
TEST_LABELS = [0] * 16 + [1, 2, 3, 4] * 6
MODELS = ("resnet18", "densenet121")
# correct test predictions at the last epoch for seeds (0, 1); the best-val epoch gets one more
CORRECT = {
    ("none", "resnet18"): (18, 20),
    ("none", "densenet121"): (17, 19),
    ("classic", "resnet18"): (20, 22),
    ("classic", "densenet121"): (19, 21),
    ("classic+gan", "resnet18"): (30, 34),
    ("classic+gan", "densenet121"): (24, 17),
}
FIGURES = (
    "curves_none.png",  # every regime beyond Fig. 2/3's two gets its curves
    "fig1_real_vs_synthetic.png",
    "fig2_curves_classic.png",
    "fig3_curves_classic_gan.png",
    "fig4_confusion_classic.png",
    "fig5_confusion_classic_gan.png",
    "gan_losses.png",
)
CONFIG_SENTINEL = "spec: ../shared/data/<retina>.npz"


def _auc(k: int) -> float:  # a known, distinct value per cell
    return 0.5 + k / 100


def _block(k: int, epoch: int) -> dict:
    """A metrics.json protocol block where the first k test images are right, the rest wrong."""
    labels = np.array(TEST_LABELS)
    pred = np.where(np.arange(len(labels)) < k, labels, (labels + 1) % 5)
    confusion = np.zeros((5, 5), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    prob = np.eye(5)[pred].tolist()
    m = {"accuracy": k / 40, "auc": _auc(k), "balanced_accuracy": k / 50, "macro_f1": k / 60}
    m |= {"qwk": k / 80, "loss": 1.0, "confusion": confusion.tolist()}
    val = dict(m)
    return {"epoch": epoch, "val": val, "test": m, "test_pred": pred.tolist(), "test_prob": prob}


def write_run(root: Path, regime: str, model: str, seed: int, last: int, best: int) -> Path:
    out = root / "classify" / regime / model / f"seed{seed}"
    out.mkdir(parents=True)
    metrics = {
        "model": model,
        "seed": seed,
        "epochs": 3,
        "num_classes": 5,
        "class_names": CLASSES,
        "train_counts": [10] * 5,
        "train_size": 50,
        "val_size": 10,
        "test_size": 40,
        "config_hash": "abc",
        "version": "0.1.0",
        "test_labels": TEST_LABELS,
        "last": _block(last, 3),
        "best_val": _block(best, 2),
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    with open(out / "curves.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            "epoch train_loss train_acc val_loss val_acc test_loss test_acc".split()
            + ["seconds", "images_per_s", "lr"]
        )
        for e in (1, 2, 3):
            w.writerow([e, 2 / e, 0.3 * e, 2.2 / e, 0.25 * e, 2.3 / e, 0.2 * e, 1.0, 50.0, 1e-4])
    return out


def _fidelity() -> dict:
    overall = {"kid_mean": 0.012, "kid_std": 0.003, "fid": 35.5, "precision": 0.61}
    overall |= {"recall": 0.42, "density": 0.9, "coverage": 0.55, "n": 40}
    part = {"overall": overall, "per_class": {"c0": overall}}
    f = {"vs_train": part, "vs_test": part}
    memo = {"metric": "pixel L1", "threshold": 0.1, "closest": [{"index": 3, "distance": 0.01}]}
    memo["raw"] = {"n": 16, "n_within": 1, "fraction_within": 0.0625}
    memo["selected"] = {"n": 0, "n_within": 0, "fraction_within": None}
    return {"feature_extractor": "resnet18-local", "raw": f, "selected": f, "memorisation": memo}


def make_run_dir(root: Path) -> Path:
    for (regime, model), counts in CORRECT.items():
        for seed, k in enumerate(counts):
            write_run(root, regime, model, seed, k, k + 1)
    (root / "data").mkdir()
    write_npz(root / "data/real.npz", make_imageset(n=30, size=8, classes=5))
    syn = make_imageset(n=15, size=8, classes=5, seed=1, splits=("train",))
    write_npz(root / "data/synthetic.npz", ImageSet(syn.images, syn.labels, syn.class_names))
    (root / "data/fidelity.json").write_text(json.dumps(_fidelity()))
    (root / "gan").mkdir()
    with open(root / "gan/log.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow("epoch step critic_loss gen_loss wasserstein gp lr images_per_s".split())
        for step in range(6):
            e = step // 2 + 1
            w.writerow([e, step, -1 / e, 0.5 * e, 1 / e, "", 1e-4, 100.0])
    config = {"data": {"spec": "../shared/data/<retina>.npz"}}
    config["experiment"] = {"models": list(MODELS), "seeds": [0, 1], "bootstrap": 300}
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = make_run_dir(tmp_path_factory.mktemp("run"))
    return run_dir, build_report(run_dir)


def _copy(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("report"))
    return dest


# ---------------------------------------------------------------------------------------------
# numbers


def test_results_json_means_and_stds(built):
    run_dir, _ = built
    saved = json.loads((run_dir / "report/results.json").read_text())
    for protocol, extra in (("last", 0), ("best_val", 1)):
        for (regime, model), counts in CORRECT.items():
            cell = saved["table"][protocol][regime][model]
            acc = [(k + extra) / 40 for k in counts]
            assert cell["seeds"] == [0, 1]
            assert cell["accuracy"]["mean"] == pytest.approx((acc[0] + acc[1]) / 2)
            # ddof=1 with two values: |a - b| / sqrt(2)
            assert cell["accuracy"]["std"] == pytest.approx(abs(acc[0] - acc[1]) / 2**0.5)
            assert cell["accuracy"]["n"] == 2
            aucs = [_auc(k + extra) for k in counts]
            assert cell["auc"]["mean"] == pytest.approx(sum(aucs) / 2)
            assert cell["qwk"]["mean"] == pytest.approx(sum(k + extra for k in counts) / 160)
    assert saved["table"]["last"]["classic+gan"]["resnet18"]["accuracy"]["mean"] == 0.8
    assert saved["floor"] == {"accuracy": 0.4, "class": "c0", "count": 16, "n": 40}
    assert saved["bootstrap_resamples"] == 300  # read from config.yaml


def test_table1_shape_and_paper_column(built):
    run_dir, summary = built
    table = summary["table1_markdown"].splitlines()
    assert table[0] == (
        "| augmentation | resnet18 (ours) | resnet18 (paper) | densenet121 (ours) "
        "| densenet121 (paper) |"
    )
    assert [row.split("|")[1].strip() for row in table[2:]] == ["None", "Classic", "Classic+GAN"]
    gan_row = [c.strip() for c in table[4].split("|")[1:-1]]
    # ours: 0.75 and 0.85 -> 80.00 ± 7.07; no paper value for resnet18, 71.27 for densenet121
    assert gan_row == ["Classic+GAN", "80.00 ± 7.07", "—", "51.25 ± 12.37", "71.27"]
    rows = list(csv.DictReader(open(run_dir / "report/results.csv")))
    assert len(rows) == 2 * 3 * 2 * 5  # protocols x regimes x models x metrics
    densenet_none = [r for r in rows if r["regime"] == "none" and r["model"] == "densenet121"]
    assert {r["paper_pct"] for r in densenet_none} == {"46.44", ""}
    gan_acc = [r for r in rows if r["protocol"] == "last" and r["regime"] == "classic+gan"]
    assert float(next(r["mean"] for r in gan_acc if r["metric"] == "accuracy")) == 0.8
    md = (run_dir / "report/results.md").read_text()
    assert "best-validation epoch" in md and "last epoch (the paper's protocol)" in md
    assert "Majority-class floor: 40.00 %" in md


def test_paired_comparison_both_protocols(built):
    run_dir, summary = built
    for protocol in ("last", "best_val"):
        comps = {(c["better"], c["model"]): c for c in summary["comparisons"][protocol]}
        gain = comps[("classic+gan", "resnet18")]
        # seeds paired: (30 - 20 + 34 - 22) / 2 / 40 = 27.5 points (the same at best-val)
        assert gain["diff_points"] == pytest.approx(27.5)
        assert gain["seeds"] == [0, 1] and gain["n_seeds"] == 2 and gain["n_test"] == 40
        assert gain["ci_method"].startswith("paired hierarchical bootstrap (seeds, then test")
        # two seeds (25 and 30 points) leave one degree of freedom for the seed-to-seed spread
        # (t = 12.7): the interval reaches below zero, as a paired t-test would (p = 0.058);
        # the old test-images-only interval called this a win
        low, high = gain["ci_points"]
        assert low < 0 < 27.5 < high
        assert gain["verdict"] == "no evidence" and "t_interval" not in gain  # < 5 seeds
        assert 0 < gain["p_value"] <= gain["p_holm"] <= 1
        assert gain["sentence"].startswith(
            "Classic+GAN beats Classic for resnet18 by 27.50 points (95 % CI ["
        )
        assert "2 paired seed(s), 40 test images; p = " in gain["sentence"]
        assert "Holm-adjusted" in gain["sentence"]
        assert gain["sentence"].endswith("includes zero: no evidence either way.")
        flat = comps[("classic+gan", "densenet121")]
        # per image: seed 0 gains 5, seed 1 loses 4 -> 0.5 / 40 = 1.25 points, noisy
        assert flat["diff_points"] == pytest.approx(1.25)
        assert flat["ci_points"][0] < 0 < flat["ci_points"][1]
        assert flat["verdict"] == "no evidence"
        assert flat["sentence"].startswith("Classic+GAN beats Classic for densenet121 by 1.25")
    # Holm runs over every comparison the report makes: 2 protocols x 2 questions x 2 models
    every = [c for comps in summary["comparisons"].values() for c in comps]
    assert len(every) == 8 and all("p_holm" in c for c in every)
    smallest = min(every, key=lambda c: c["p_value"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, 8 * smallest["p_value"]))
    md = (run_dir / "report/results.md").read_text()
    assert "This report makes 8 paired comparisons" in md and "Holm-adjusted p-value" in md
    assert "seed-to-seed variance" in md and "does not cover variation of the data split" in md
    assert "one GAN and one synthetic set" in md  # generator_per_seed is not on in this run


def _runs(correct: bool, seeds=(0, 1)) -> dict[int, Run]:
    k = 40 if correct else 0
    return {
        s: Run(Path("."), {"test_labels": TEST_LABELS, "last": _block(k, 3), "best_val": {}})
        for s in seeds
    }


def test_bootstrap_all_right_vs_all_wrong_both_directions():
    up = paired_bootstrap(_runs(True), _runs(False), "last", resamples=200)
    assert up["diff_points"] == 100.0 and up["ci_points"] == [100.0, 100.0]
    assert up["p_value"] == pytest.approx(2 / 201)  # (1 + 0) / (1 + resamples), two-sided
    sentence = verdict_sentence(up, "classic+gan", "classic", "resnet18", "the GAN")
    assert up["verdict"] == "helped"
    assert sentence.endswith("the interval excludes zero: evidence that the GAN helped.")
    down = paired_bootstrap(_runs(False), _runs(True), "last", resamples=200)
    assert down["ci_points"] == [-100.0, -100.0]
    sentence = verdict_sentence(down, "classic+gan", "classic", "resnet18", "the GAN")
    assert down["verdict"] == "hurt"
    assert sentence.startswith("Classic+GAN trails Classic for resnet18 by 100.00 points")
    assert sentence.endswith("excludes zero: evidence that the GAN hurt.")
    # seeds pair by number: no shared seed -> reported, not crashed
    none = paired_bootstrap(_runs(True, (0,)), _runs(False, (1,)), "last", resamples=10)
    assert "error" in none
    assert "not available" in verdict_sentence(none, "classic+gan", "classic", "m", "the GAN")


def test_an_interval_excluding_zero_is_no_evidence_unless_it_survives_holm():
    comp = paired_bootstrap(_runs(True), _runs(False), "last", resamples=200)
    comp["p_holm"] = 0.18  # as when several comparisons share the family-wise error
    sentence = verdict_sentence(comp, "classic+gan", "classic", "resnet18", "the GAN")
    assert comp["verdict"] == "no evidence"
    assert "not after Holm's correction" in sentence
    assert sentence.endswith("no evidence either way.")
    comp["p_holm"] = 0.01
    verdict_sentence(comp, "classic+gan", "classic", "resnet18", "the GAN")
    assert comp["verdict"] == "helped"


def test_one_seed_says_the_interval_covers_test_images_only():
    better, base = _runs(True, (0,)), _runs(False, (0,))
    base[0].metrics["last"] = _block(20, 3)
    comp = paired_bootstrap(better, base, "last", resamples=200)
    assert comp["n_seeds"] == 1 and comp["diff_points"] == 50.0
    sentence = verdict_sentence(comp, "classic+gan", "classic", "resnet18", "the GAN")
    assert "1 paired seed(s)" in sentence
    assert sentence.endswith(
        "1 seed: the interval covers test images only, not seed-to-seed variance."
    )


def test_bootstrap_is_seeded():
    better, base = _runs(True), _runs(False)
    base[0].metrics["last"] = _block(20, 3)
    base[1].metrics["last"] = _block(10, 3)
    a = paired_bootstrap(better, base, "last", resamples=100, seed=3)
    b = paired_bootstrap(better, base, "last", resamples=100, seed=3)
    assert a == b
    others = [paired_bootstrap(better, base, "last", resamples=100, seed=s) for s in range(4, 9)]
    assert any(o["ci_points"] != a["ci_points"] for o in others)  # the seed is used


# ---------------------------------------------------------------------------------------------
# files: figures, fidelity, HTML


def test_every_figure_is_a_valid_png(built):
    run_dir, summary = built
    assert summary["figures"] == list(FIGURES)
    for name in FIGURES:
        path = run_dir / "report" / name
        with Image.open(path) as img:
            assert img.format == "PNG"
            width, height = img.size
            img.verify()
        assert width > 100 and height > 100, name


def test_fidelity_copied_and_tabled(built):
    run_dir, _ = built
    assert json.loads((run_dir / "report/fidelity.json").read_text()) == _fidelity()
    md = (run_dir / "report/results.md").read_text()
    assert "| selected | vs test | 0.012 ± 0.003 | 35.5 | 0.61 | 0.42 | 0.9 | 0.55 | 40 |" in md
    assert "**Memorisation (distance: pixel L1)**" in md
    assert "| raw.fraction_within | 0.0625 |" in md and "| selected.fraction_within | — |" in md


def test_html_is_self_contained(built):
    run_dir, _ = built
    html = (run_dir / "report/report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    # the config is shown, escaped (jinja2 autoescape)
    assert CONFIG_SENTINEL.replace("<", "&lt;").replace(">", "&gt;") in html
    assert CONFIG_SENTINEL not in html
    assert "Classic+GAN beats Classic for resnet18" in html
    assert "80.00 ± 7.07" in html


def test_html_renders_in_a_real_browser(built, tmp_path):
    """Headless Chromium: every figure decodes, the tables are there, nothing logs an error."""
    from browser import render

    run_dir, _ = built
    shot = tmp_path / "top.png"
    shown = render(run_dir / "report/report.html", screenshot=shot)
    assert shown.errors == []
    assert len(shown.images) == len(FIGURES)
    broken = [i["alt"] for i in shown.images if not i["complete"] or i["naturalWidth"] == 0]
    assert broken == []
    md = (run_dir / "report/results.md").read_text()
    assert shown.tables == md.count("\n|---") + md.count("\n| ---")  # one per markdown table
    assert shown.headings[0].startswith("ganaug report")
    with Image.open(shot) as image:
        assert image.size == (1200, 900)


# ---------------------------------------------------------------------------------------------
# missing pieces and errors


def test_missing_synthetic_gan_and_fidelity_are_noted(built, tmp_path):
    run_dir = _copy(built[0], tmp_path / "run")
    (run_dir / "data/synthetic.npz").unlink()
    (run_dir / "data/fidelity.json").unlink()
    shutil.rmtree(run_dir / "gan")
    (run_dir / "classify/classic/resnet18/seed0/curves.csv").unlink()  # mean of seed 1 only
    for seed in (0, 1):
        (run_dir / f"classify/classic+gan/resnet18/seed{seed}/curves.csv").unlink()
    summary = build_report(run_dir)
    assert "fig1_real_vs_synthetic.png" not in summary["figures"]
    assert "gan_losses.png" not in summary["figures"]
    assert not (run_dir / "report/fig1_real_vs_synthetic.png").exists()
    assert (run_dir / "report/fig4_confusion_classic.png").is_file()
    assert "fig2_curves_classic.png" in summary["figures"]
    assert "fig3_curves_classic_gan.png" not in summary["figures"]  # its curves.csv is gone
    md = (run_dir / "report/results.md").read_text()
    assert "fig1_real_vs_synthetic.png skipped: data/synthetic.npz not found" in md
    assert "gan/log.csv not found" in md and "data/fidelity.json not found" in md
    assert "fig3_curves_classic_gan.png skipped: missing or unreadable input (no curves.csv" in md
    assert (run_dir / "report/report.html").is_file()


def test_one_seed_extra_regime_and_missing_cells(tmp_path):
    run_dir = tmp_path / "run"
    write_run(run_dir, "classic", "resnet18", 0, 20, 21)
    write_run(run_dir, "gan", "resnet18", 0, 24, 22)
    write_run(run_dir, "classic+gan", "densenet121", 5, 26, 26)
    summary = build_report(run_dir)  # no data/, gan/ or config.yaml at all
    assert summary["regimes"] == ["none", "classic", "classic+gan", "gan"]
    assert summary["models"] == ["densenet121", "resnet18"]  # no config: sorted
    cell = summary["table"]["last"]["gan"]["resnet18"]
    assert cell["accuracy"] == {"mean": 0.6, "std": None, "n": 1, "values": [0.6]}
    assert summary["table"]["last"]["none"]["resnet18"] is None
    table = summary["table1_markdown"]
    assert "| Real+GAN (no classic) | missing | — | 60.00 (n=1) | — |" in table
    assert "| None | missing | 46.44 | missing | — |" in table
    md = (run_dir / "report/results.md").read_text()
    assert "regime none: no results for densenet121, resnet18" in md
    assert "not available (no classic+gan results)" in md
    assert summary["figures"] == ["curves_gan.png", *FIGURES[2:6]]


def test_five_seeds_t_interval_and_stale_cells_ignored(tmp_path):
    run_dir = tmp_path / "run"
    gains = {"none": (18, 19, 20, 18, 19), "classic": (20, 21, 22, 20, 21)}
    gains["classic+gan"] = (30, 32, 31, 30, 33)  # 9-12 images more than classic, every seed
    for regime, counts in gains.items():
        for seed, k in enumerate(counts):
            write_run(run_dir, regime, "resnet18", seed, k, k)
    # stale cells of an earlier grid: a seed and a regime config.yaml does not name; the second
    # is not even JSON, so reading it would fail the report
    write_run(run_dir, "classic+gan", "resnet18", 7, 0, 0)
    write_run(run_dir, "gan", "resnet18", 0, 20, 20)
    (run_dir / "classify/gan/resnet18/seed0/metrics.json").write_text("{not json")
    experiment = {"regimes": ["none", "classic", "classic+gan"], "models": ["resnet18"]}
    experiment |= {"seeds": [0, 1, 2, 3, 4], "bootstrap": 300, "generator_per_seed": True}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"experiment": experiment}))
    summary = build_report(run_dir)
    assert summary["ignored_cells"] == ["classic+gan/resnet18/seed7", "gan/resnet18/seed0"]
    assert summary["regimes"] == ["none", "classic", "classic+gan"]
    cell = summary["table"]["last"]["classic+gan"]["resnet18"]
    assert cell["seeds"] == [0, 1, 2, 3, 4] and cell["accuracy"]["mean"] == pytest.approx(0.78)
    gain = next(c for c in summary["comparisons"]["last"] if c["better"] == "classic+gan")
    assert gain["n_seeds"] == 5 and gain["diff_points"] == pytest.approx(26.0)
    assert gain["verdict"] == "helped" and gain["ci_points"][0] > 0
    # per-seed differences 25, 27.5, 22.5, 25, 30 points: mean 26, sd 2.85, t_4 = 2.776
    low, high = gain["t_interval"]["ci_points"]
    half = 2.7764451 * np.std([25, 27.5, 22.5, 25, 30], ddof=1) / 5**0.5
    assert (low, high) == (pytest.approx(26 - half), pytest.approx(26 + half))
    assert (
        "evidence that the GAN helped. Paired t over the 5 per-seed differences"
        in (gain["sentence"])
    )
    saved = json.loads((run_dir / "report/results.json").read_text())
    assert saved["ignored_cells"] == summary["ignored_cells"]
    assert saved["comparisons"]["best_val"][0]["t_interval"]["p_value"] < 0.05
    md = (run_dir / "report/results.md").read_text()
    assert "Ignored 2 result cell(s) on disk that config.yaml's grid does not name" in md
    assert "each seed's own GAN draw (experiment.generator_per_seed)" in md
    assert "This report makes 4 paired comparisons" in md  # 2 protocols x 2 questions


def test_synthetic_only_is_compared_with_none_when_the_grid_ran_it(tmp_path):
    run_dir = tmp_path / "run"
    counts = {"none": (20, 21, 22, 20, 21), "classic": (21, 21, 22, 20, 21)}
    counts |= {"classic+gan": (20, 22, 22, 21, 21), "synthetic-only": (10, 11, 9, 12, 10)}
    for regime, ks in counts.items():
        for seed, k in enumerate(ks):
            write_run(run_dir, regime, "resnet18", seed, k, k)
    experiment = {"regimes": list(counts), "models": ["resnet18"], "seeds": [0, 1, 2, 3, 4]}
    experiment["bootstrap"] = 1000  # p can reach 0.002: below 0.05 after Holm over 6
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"experiment": experiment}))
    summary = build_report(run_dir)
    for protocol in ("last", "best_val"):
        pairs = [(c["better"], c["base"]) for c in summary["comparisons"][protocol]]
        expected = [("classic+gan", "classic"), ("classic", "none"), ("synthetic-only", "none")]
        assert pairs == expected
    tstr = summary["comparisons"]["best_val"][2]
    # 52 images fewer of 5 x 40: 10.4 images a seed = 26 points below None, every seed
    assert tstr["diff_points"] == pytest.approx(-26.0) and tstr["verdict"] == "hurt"
    assert tstr["sentence"].startswith("Synthetic only (train on synthetic, test on real) trails")
    assert "evidence that synthetic images in place of real ones hurt" in tstr["sentence"]
    md = (run_dir / "report/results.md").read_text()
    assert "This report makes 6 paired comparisons" in md  # 2 protocols x 3 questions


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, "code: not recorded (no readable source.json)"),
        ([], "code: not recorded (source.json has no entries)"),
        ([{"commit": "a" * 40, "dirty": False}], "code: commit aaaaaaaaaaaa"),
        (
            [{"commit": "a" * 40, "dirty": False}, {"commit": "a" * 40, "dirty": False}],
            "code: commit aaaaaaaaaaaa, 2 invocations (resumed)",
        ),
        (
            [{"commit": "a" * 40, "dirty": True}, {"commit": None, "dirty": None}],
            "code: commit aaaaaaaaaaaa with uncommitted changes, then an unknown commit, "
            "2 invocations (resumed)",
        ),
    ],
)
def test_the_report_names_the_code_each_invocation_ran_on(tmp_path, record, expected):
    if record is not None:
        (tmp_path / "source.json").write_text(json.dumps(record))
    assert source_text(tmp_path) == expected


def test_custom_paper_table(built, tmp_path):
    run_dir = _copy(built[0], tmp_path / "run")
    summary = build_report(run_dir, paper_table={"classic": {"resnet18": 12.5}})
    assert "| Classic | 52.50 ± 3.54 | 12.50 | 50.00 ± 3.54 | — |" in summary["table1_markdown"]


def test_no_results_is_input_error(tmp_path):
    (tmp_path / "classify").mkdir()
    with pytest.raises(InputError, match="no classifier results"):
        build_report(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        build_report(tmp_path / "nope")


def test_corrupt_metrics_is_input_error(tmp_path):
    out = write_run(tmp_path, "classic", "resnet18", 0, 20, 21)
    metrics = json.loads((out / "metrics.json").read_text())
    del metrics["best_val"]["test_pred"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputError, match="missing key 'best_val.test_pred'"):
        build_report(tmp_path)


def test_cli_report(built, tmp_path, cli, capsys):
    run_dir = _copy(built[0], tmp_path / "run")
    assert cli(["report", run_dir]) == 0
    out = capsys.readouterr().out
    assert str(run_dir / "report" / "results.md") in out
    assert "| Classic+GAN | 80.00 ± 7.07 | — | 51.25 ± 12.37 | 71.27 |" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["report", empty]) == 2
    err = capsys.readouterr().err.strip()
    assert "no classifier results" in err and len(err.splitlines()) == 1
    assert not (empty / "report").exists()


def _fidelity_eval(fid: float) -> dict:
    block = {"fid": fid, "kid_mean": 0.01, "precision": 0.7, "recall": 0.3, "density": 0.9}
    block |= {"coverage": 0.5, "n": 40}
    splits = {f"vs_{s}": block for s in ("train", "val", "test")}
    floor = {"train_vs_test": dict(block, fid=9.0), "val_vs_test": dict(block, fid=1.5, n=12)}
    raw = {k: dict(v, fid=fid * 2) for k, v in splits.items()}
    return {"sets": {"selected": splits, "raw": raw}, "floor": floor, "note": "independent"}


def test_generator_per_seed_layout_and_table(built, tmp_path):
    """With a generator per seed, Fig. 1, the GAN losses and fidelity come from the first seed's
    generator (data/seed0/, gan/seed0/), and one row per generator puts its independent FID next
    to the accuracy of the seed it served."""
    run_dir = _copy(built[0], tmp_path / "run")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["experiment"]["generator_per_seed"] = True
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for seed, fid in ((0, 20.0), (1, 40.0)):
        (run_dir / f"data/seed{seed}").mkdir()
        shutil.copy(run_dir / "data/synthetic.npz", run_dir / f"data/seed{seed}/synthetic.npz")
        (run_dir / f"data/seed{seed}/fidelity_eval.json").write_text(
            json.dumps(_fidelity_eval(fid))
        )
    shutil.move(run_dir / "data/fidelity.json", run_dir / "data/seed0/fidelity.json")
    (run_dir / "data/synthetic.npz").unlink()
    shutil.move(run_dir / "gan", run_dir / "gan_seed0")
    (run_dir / "gan").mkdir()
    shutil.move(run_dir / "gan_seed0", run_dir / "gan/seed0")
    summary = build_report(run_dir)
    assert "fig1_real_vs_synthetic.png" in summary["figures"]
    assert "gan_losses.png" in summary["figures"]
    assert summary["fidelity"] == _fidelity()
    rows = {row["seed"]: row for row in summary["generators"]}
    assert rows[0]["selected_vs_test"]["fid"] == 20.0 and rows[1]["raw_vs_test"]["fid"] == 80.0
    # resnet18 best-val: classic seeds 21, 23 of 40 right; classic+gan 31, 35
    assert rows[0]["resnet18"]["gain_over_classic"] == pytest.approx((31 - 21) / 40)
    assert rows[1]["resnet18"]["gain_over_classic"] == pytest.approx((35 - 23) / 40)
    md = (run_dir / "report/results.md").read_text()
    assert "## Generators: independent fidelity per seed" in md
    assert "| 0 | 20 | 40 | 0.7 | 0.3 | 40 | 1.5 (12) | 77.50 | +25.00 |" in md
    assert "| 1 | 40 | 80 | 0.7 | 0.3 | 40 | 1.5 (12) | 87.50 | +30.00 |" in md
    assert "(the generator of seed 0)" in md
    # two generators: each one's FID against its seed's gain, drawn and captioned
    points = fidelity_gain_points(summary["generators"], "resnet18")
    assert [(seed, fid, round(gain, 9)) for seed, fid, gain in points] == [(0, 20, 25), (1, 40, 30)]
    assert "fidelity_vs_gain.png" in summary["figures"]
    assert "Did better generators help more?" in md
    with Image.open(run_dir / "report/fidelity_vs_gain.png") as img:
        img.verify()


def test_spearman_ranks():
    assert spearman([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0]) == pytest.approx(0.8)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1.0, 2.0], [5.0, 5.0]))  # a constant side has no rank order
