"""Live monitoring: TensorBoard event files in `tb/` beside a run's outputs.

On when `runtime.tensorboard` is true (the default) and the `tensorboard` package is installed
(`pip install 'ganaug[tb]'`; `make setup` installs it); otherwise every call is a no-op. The GAN
writes its losses per generator step, its epoch means and sample grids; each classifier cell
writes its train and val curves (never test: a live test curve invites tuning on it). Watch a
run while it trains with `tensorboard --logdir runs/demo`.

A resumed run purges the events written after its checkpoint, so curves never double back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.runtime import is_main

log = logging.getLogger("ganaug")

DIR = "tb"  # the event files' folder inside a GAN or classifier output directory


class Board:
    """A TensorBoard writer for one output directory, or nothing when monitoring is off."""

    def __init__(self, out_dir: Path | str, enabled: bool, resumed_at: int = 0) -> None:
        self.writer: Any = None
        if not (enabled and is_main()):  # under torchrun rank 0 writes
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.debug("tensorboard is not installed: no event files (pip install 'ganaug[tb]')")
            return
        purge = resumed_at + 1 if resumed_at else None  # drop what followed the checkpoint
        self.writer = SummaryWriter(str(Path(out_dir) / DIR), purge_step=purge, flush_secs=10)

    def scalars(self, step: int, prefix: str, **values: float) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A uint8 (H, W, C) image, e.g. a grid of samples."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
