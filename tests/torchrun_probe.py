"""The ganaug CLI with a probe, for tests/test_distributed.py to launch under torchrun.

After every classifier epoch (and every GAN unit's epoch) each rank saves its parameters to
PROBE_DIR/rank{r}_epoch{e}.pt; PROBE_STOP_AFTER=e ends every rank with exit 3 after epoch e,
checkpoint written, as an interruption would. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

import ganaug.classify.fit as classify_fit
import ganaug.generators.loop as gan_train
from ganaug.cli import app
from ganaug.runtime import dist_info

PROBE = Path(os.environ["PROBE_DIR"])
STOP_AFTER = int(os.environ.get("PROBE_STOP_AFTER", "0"))


def dump(epoch: int, modules: list[torch.nn.Module]) -> None:
    state = {
        f"{i}.{name}": p.detach().cpu().clone()
        for i, module in enumerate(modules)
        for name, p in module.named_parameters()
    }
    torch.save(state, PROBE / f"rank{dist_info().rank}_epoch{epoch}.pt")
    if epoch == STOP_AFTER:
        raise SystemExit(3)


def classifier_epoch(run, epoch, bar):
    row = _run_epoch(run, epoch, bar)
    dump(epoch, [run.model])
    return row


def gan_epoch(family, unit, x, y, ctx, step, *rest):
    step = _train_epoch(family, unit, x, y, ctx, step, *rest)
    dump(ctx.guard.epoch, [unit.nets["G"], unit.nets["D"]])
    return step


_run_epoch, classify_fit._run_epoch = classify_fit._run_epoch, classifier_epoch
_train_epoch, gan_train.train_epoch = gan_train.train_epoch, gan_epoch

if __name__ == "__main__":
    app()
