"""Device choice, seeding and thread count: what a command sets up once, at its entry.

Library code never seeds global RNGs itself: commands call `seed_everything` once at their entry
and pass explicit `torch.Generator`s (from `make_generator`) to anything random.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ganaug import InputError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda > mps > cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise InputError("--device mps: MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch once, at a command's entry point."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """An explicit generator: the only source of randomness library code uses."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
