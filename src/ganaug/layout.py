"""Where each generator's files live in a run directory (shared by the pipeline and the report).

One generator serves every seed (gan/, data/synthetic*.npz: DESIGN.md's layout) unless
experiment.generator_per_seed is on and the grid has more than one seed; then seed s's generator
is in gan/seed<s>/ and its samples, selection and synthetic training files in data/seed<s>/.
"""

from __future__ import annotations

from collections.abc import Sequence


def per_seed(seeds: Sequence[int], generator_per_seed: bool) -> bool:
    """One generator per classifier seed: asked for, and more than one seed to tell apart."""
    return bool(generator_per_seed) and len(seeds) > 1


def generator_dirs(seeds: Sequence[int], generator_per_seed: bool) -> dict[int, tuple[str, str]]:
    """Owner seed -> (gan dir, synthetic data dir), relative to the run dir: every seed when
    generators are per seed, else only the first (whose generator serves all)."""
    if per_seed(seeds, generator_per_seed):
        return {s: (f"gan/seed{s}", f"data/seed{s}") for s in seeds}
    return {s: ("gan", "data") for s in list(seeds)[:1]}


def dirs_of(seeds: Sequence[int], generator_per_seed: bool, seed: int) -> tuple[str, str]:
    """(gan dir, synthetic data dir) of the generator that classifier seed `seed` trains with."""
    if per_seed(seeds, generator_per_seed):
        return f"gan/seed{seed}", f"data/seed{seed}"
    return "gan", "data"
