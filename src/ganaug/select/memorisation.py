"""Memorisation: how close each synthetic sample is to an image the GAN saw (copy detection).

Not in the paper. Two reference sets: the originals (the real train split) and, when given,
`trained_on`, the set the GAN trained on (in the pipeline classic.npz: the originals plus their
flipped and jittered copies, so a generator that copies a flipped image is caught).

selection.csv columns: `nn_pixel` (root-mean-square pixel difference, 0..1 scale, to the nearest
original) and `nn_train_index` (that image's row); `nn_pixel_trained` and `nn_trained_index` the
same for `trained_on`. A sample closer than select.min_nn_distance to either set is `memorised`.

fidelity.json's "memorisation": the share of raw and of selected samples within the threshold and
the MEMORISATION_PAIRS closest pairs (index, seed, train_index or trained_index, distance, kept),
for the originals at its top level and for `trained_on` under "trained_on".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganaug.data import ImageSet
from ganaug.metrics import memorisation_summary, nearest_pixel_neighbours

MEMORISATION_PAIRS = 8  # closest synthetic/reference pairs in memorisation*.png and fidelity.json


@dataclass(frozen=True)
class Reference:
    """A set of images the synthetic samples are checked against for copies (memorisation)."""

    name: str  # "originals" (real train split) or "trained_on" (the set the GAN trained on)
    distance: str  # selection.csv column: pixel distance to the nearest image of the set
    index: str  # selection.csv column: that image's row in the set
    pair_key: str  # key of that row in fidelity.json's closest pairs
    figure: str  # closest pairs: row 1 synthetic, row 2 their nearest image of the set
    metric: str  # what the distance measures, recorded in fidelity.json


ORIGINALS = Reference(
    name="originals",
    distance="nn_pixel",
    index="nn_train_index",
    pair_key="train_index",
    figure="memorisation.png",
    metric="root-mean-square pixel difference (0..1) to the nearest real train image",
)
TRAINED_ON = Reference(
    name="trained_on",
    distance="nn_pixel_trained",
    index="nn_trained_index",
    pair_key="trained_index",
    figure="memorisation_trained_on.png",
    metric="root-mean-square pixel difference (0..1) to the nearest image of the set the GAN "
    "trained on",
)


def reference_sets(real: ImageSet, trained_on: ImageSet | None) -> dict[Reference, np.ndarray]:
    """The train images (N, H, W, C) of each memorisation reference: originals, then trained_on."""
    sets = {ORIGINALS: real.images["train"]}
    if trained_on is not None:
        sets[TRAINED_ON] = trained_on.images["train"]
    return sets


def nearest_columns(
    images: np.ndarray, references: dict[Reference, np.ndarray], device: torch.device
) -> dict[str, np.ndarray]:
    """Per sample, the pixel distance to and the row of its nearest image in each reference set:
    nn_pixel, nn_train_index (+ nn_pixel_trained, nn_trained_index)."""
    columns = {}
    for ref, ref_images in references.items():
        columns[ref.distance], columns[ref.index] = nearest_pixel_neighbours(
            images, ref_images, device=device
        )
    return columns


def memorised(table: dict[str, np.ndarray], threshold: float) -> np.ndarray:
    """Bool mask (N,): samples closer than `threshold` to an image of any reference set."""
    refs = (ORIGINALS, TRAINED_ON)
    nearest = np.stack([table[r.distance] for r in refs if r.distance in table])  # (refs, N)
    return (nearest < threshold).any(axis=0)


def closest_samples(table: dict[str, np.ndarray], ref: Reference) -> np.ndarray:
    """Rows of the MEMORISATION_PAIRS samples nearest to `ref` (ties to the lower index)."""
    return np.lexsort((table["index"], table[ref.distance]))[:MEMORISATION_PAIRS]


def reference_memorisation(
    table: dict[str, np.ndarray], kept: np.ndarray, threshold: float, ref: Reference
) -> dict[str, object]:
    """Share of raw and selected samples within `threshold` of an image of `ref`; closest pairs."""
    distance, nearest = table[ref.distance], table[ref.index]
    return {
        "reference": ref.name,
        "metric": ref.metric,
        "threshold": threshold,
        "raw": memorisation_summary(distance, threshold),
        "selected": memorisation_summary(distance[kept], threshold),
        "closest": [
            {
                "index": int(i),
                "seed": int(table["seed"][i]),
                ref.pair_key: int(nearest[i]),
                "distance": float(distance[i]),
                "kept": bool(kept[i]),
            }
            for i in closest_samples(table, ref)
        ],
    }


def memorisation_block(table: dict[str, np.ndarray], kept: np.ndarray, threshold: float) -> dict:
    """fidelity.json's "memorisation": the originals at the top level, trained_on beneath."""
    block = reference_memorisation(table, kept, threshold, ORIGINALS)
    if TRAINED_ON.distance in table:
        block["trained_on"] = reference_memorisation(table, kept, threshold, TRAINED_ON)
    return block
