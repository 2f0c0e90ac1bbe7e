"""Provenance: the part of every output's `meta` that says what made it."""

from __future__ import annotations

from typing import Any

import torch

from ganaug import __version__


def provenance(stage: str, **extra: Any) -> dict[str, Any]:
    """The common part of every output's `meta`."""
    return {"stage": stage, "version": __version__, "torch": torch.__version__, **extra}
