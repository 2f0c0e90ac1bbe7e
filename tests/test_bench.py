"""The benchmark scripts: the GPU check's table on tiny CPU settings, its FLOP counting and paper
projection against hand computations, and the fresh-process peak-memory helper."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is a folder beside src/, not an installed package
    sys.path.insert(0, str(REPO))

from bench.bench_train import in_fresh_process  # noqa: E402
from bench.gpu_check import (  # noqa: E402
    PaperWork,
    bf16_peak,
    count_flops,
    paper_work,
    projected_seconds,
)

from ganaug.config import load_config  # noqa: E402

STEPS = ("GAN iteration", "resnet101 train step", "densenet121 train step", "diffusion train step")


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory) -> tuple[str, str]:
    """(stdout, appended file) of one tiny CPU run of `python -m bench.gpu_check`."""
    out = tmp_path_factory.mktemp("gpu_check") / "results.md"
    out.write_text("# earlier results\n")
    cmd = [sys.executable, "-m", "bench.gpu_check", "--tiny", "--device", "cpu"]
    cmd += ["--steps", "1", "--warmup", "0", "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, out.read_text()


def table_rows(text: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header row


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_gpu_check_rows_have_positive_finite_rates(tiny_check):
    stdout, _ = tiny_check
    rows = table_rows(stdout)
    header = next(line for line in stdout.splitlines() if line.startswith("| step"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    img_s, tflop_s = columns.index("img/s"), columns.index("TFLOP/s")
    for step in STEPS:
        mine = [row for row in rows if row[0].startswith(step)]
        assert [row[1].split(" ")[0] for row in mine] == ["plain", "fast"], step
        for row in mine:
            for value in (number(row[img_s]), number(row[tflop_s])):
                assert math.isfinite(value) and value > 0, (step, row)


def test_gpu_check_runs_the_fast_path_checks_on_its_device(tiny_check):
    stdout, _ = tiny_check
    line = next(line for line in stdout.splitlines() if line.startswith("Fast-path checks on cpu"))
    assert "pinned copy equal: True" in line
    rel = float(re.search(r"max \|logit\|: ([0-9.]+)", line).group(1))
    assert 0 < rel < 0.05  # bf16 really ran (not 0), and stayed close to float32
    assert float(re.search(r"after one step: ([0-9.e+-]+)", line).group(1)) < 1e-6


def test_gpu_check_projects_a_positive_paper_time(tiny_check):
    stdout, _ = tiny_check
    found = re.findall(r"(plain|fast) path ([0-9.]+) (s|min|h)", stdout)
    assert [kind for kind, _, _ in found] == ["plain", "fast"]
    assert all(float(value) > 0 for _, value, _ in found)


def test_gpu_check_appends_its_heading_and_table(tiny_check):
    stdout, written = tiny_check
    assert written.startswith("# earlier results\n")  # appended, not overwritten
    heading = re.search(r"^## \d{4}-\d\d-\d\d · .+ · torch .+ · gpu_check --tiny", written, re.M)
    assert heading, written[:300]
    assert len(table_rows(written)) == 2 * len(STEPS)
    assert stdout.strip() in written


def test_count_flops_of_a_linear_layer_matches_hand_count():
    batch, n_in, n_out = 4, 16, 8
    layer = torch.nn.Linear(n_in, n_out)
    x = torch.randn(batch, n_in, requires_grad=True)
    # forward x @ W.T, backward grad_x = g @ W and grad_W = g.T @ x: three matmuls of 2*B*in*out
    flops = count_flops(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * batch * n_in * n_out


def test_paper_work_counts_the_paper_grid():
    work = paper_work(load_config("paper"))
    # GAN: 1400 epochs x (4320 classic images // batch 8 // n_critic 5 = 108) generator steps
    # classifier, per model: 3 seeds x 40 epochs x (1080 + 4320 + 4320 + 443 * 3) train images,
    # and 3 seeds x 3 regimes x 40 epochs x (120 val + 400 test) eval images
    assert work == PaperWork(
        1400 * 108, 1400 * 4320, 3 * 40 * (1080 + 4320 + 5649), 3 * 3 * 40 * 520
    )
    assert projected_seconds(work, "gan", 0.5, 40) == pytest.approx(0.5 * 151_200)
    expected = (1_325_880 + 187_200 / 3) / (64 / 0.5)  # images / (img/s)
    assert projected_seconds(work, "classifier", 0.5, 64) == pytest.approx(expected)
    # diffusion in the GAN's place: the GAN's 6,048,000 real images at 32 images / 0.5 s
    assert projected_seconds(work, "diffusion", 0.5, 32) == pytest.approx(6_048_000 / 64)


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_bf16_peak_picks_the_most_specific_name(name, peak):
    assert bf16_peak(name) == peak


def allocate_200mb() -> int:
    return int(np.ones(200 * 2**20 // 8).sum())  # touched, so every page is resident


def allocate_nothing() -> int:
    return 0


def test_in_fresh_process_reports_a_200mb_peak():
    result, peak, before = in_fresh_process(allocate_200mb)
    _, empty_peak, _ = in_fresh_process(allocate_nothing)
    assert result == 200 * 2**20 // 8
    assert peak - empty_peak >= 150
    assert peak - before >= 150
