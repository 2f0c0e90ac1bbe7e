"""What the training loop reports and watches: per-epoch loss means, log.csv, the non-finite guard.

log.csv columns: critic_loss is the critic's full objective (with lambda * gp for wgan-gp),
wasserstein the critic's estimate E[D(real)] - E[D(fake)], gp the unweighted penalty (0 for wgan),
images_per_s the real images the critic saw per second; all are means over the epoch. A family
adds its own columns after these (GeneratorFamily.log_columns). A family without a critic logs its
loss as gen_loss and leaves the critic columns at 0.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import torch

from ganaug.config import GanConfig
from ganaug.runtime import all_finite, atomic_write_text

log = logging.getLogger("ganaug")

LOG_COLUMNS = (
    "epoch",
    "step",
    "critic_loss",
    "gen_loss",
    "wasserstein",
    "gp",
    "lr",
    "images_per_s",
)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names where and the last good checkpoint."""


class EpochStats:
    """Running means of the losses of one epoch (over all units)."""

    def __init__(self) -> None:
        self.sums = {k: 0.0 for k in ("critic_loss", "gen_loss", "wasserstein", "gp")}
        self.counts = dict.fromkeys(self.sums, 0)
        self.images = 0  # real images the critic saw
        self.last: dict[str, float] = {}  # the latest value of each loss (per-step monitoring)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] += v
            self.counts[k] += 1
            self.last[k] = v

    def row(self, epoch: int, step: int, lr: float, seconds: float) -> dict:
        means = {k: self.sums[k] / max(1, self.counts[k]) for k in self.sums}
        speed = self.images / max(seconds, 1e-9)
        return {"epoch": epoch, "step": step, **means, "lr": lr, "images_per_s": speed}


class LossLog:
    """log.csv, one row per epoch; on resume rows after the checkpoint's epoch are dropped."""

    def __init__(
        self, path: Path, keep_through: int, columns: tuple[str, ...] = LOG_COLUMNS
    ) -> None:
        self.path, self.columns = path, columns
        kept = []
        if path.is_file():
            with open(path, newline="") as fh:
                kept = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= keep_through]
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(path, text.getvalue())

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.columns, lineterminator="\n").writerow(
                {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
            )


class NanGuard:
    """gan.nan_policy: `stop` raises TrainingDiverged at the first non-finite loss; `skip` drops
    that update and stops after gan.max_nan_skips of them."""

    def __init__(self, g: GanConfig, ckpt: Path, good_epoch: int | None, skips: int) -> None:
        self.policy, self.max_skips, self.ckpt = g.nan_policy, g.max_nan_skips, ckpt
        self.good_epoch, self.skips, self.epoch, self.step = good_epoch, skips, 0, 0

    def finite(self, loss: torch.Tensor, what: str) -> bool:
        if all_finite(loss):  # every rank decides alike (torchrun), so none waits alone
            return True
        where = f"non-finite {what} loss at epoch {self.epoch}, generator step {self.step}"
        if self.policy == "skip" and self.skips < self.max_skips:
            self.skips += 1
            log.warning("%s: update skipped (%d of %d)", where, self.skips, self.max_skips)
            return False
        last = (
            f"{self.ckpt} (epoch {self.good_epoch})" if self.good_epoch is not None else "none yet"
        )
        skipped = f" after {self.skips} skipped updates" if self.skips else ""
        raise TrainingDiverged(
            f"GAN training diverged: {where}{skipped}; last good checkpoint: {last}. "
            "Lower gan.lr, or set gan.nan_policy=skip (gan.max_nan_skips bounds it)"
        )
