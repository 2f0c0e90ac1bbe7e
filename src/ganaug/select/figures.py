"""The selection's figures: memorisation*.png (closest pairs) and selected_contact.png.

memorisation.png shows the MEMORISATION_PAIRS samples closest to an original (row 1 synthetic,
row 2 their nearest original), memorisation_trained_on.png the same for `trained_on`;
selected_contact.png the kept samples, one row per class, best combined rank first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganaug.data import ImageSet
from ganaug.runtime import save_image_grid
from ganaug.select.memorisation import Reference, closest_samples

CONTACT_PER_CLASS = 10  # images per class row of selected_contact.png


def write_figures(
    out_dir: Path,
    raw: ImageSet,
    references: dict[Reference, np.ndarray],
    table: dict[str, np.ndarray],
    kept: np.ndarray,
    num_classes: int,
) -> None:
    """memorisation*.png per reference set (row 1 synthetic, row 2 its nearest image of the set)
    and selected_contact.png (one row per class, best first)."""
    images = raw.images["train"]
    for ref, ref_images in references.items():
        closest = closest_samples(table, ref)
        pairs = np.stack([images[closest], ref_images[table[ref.index][closest]]])
        save_image_grid(out_dir / ref.figure, pairs)  # (2, 8, H, W, C)
    sheet = np.full((num_classes, CONTACT_PER_CLASS, *images.shape[1:]), 255, np.uint8)
    order = np.lexsort((table["index"], table["combined_rank"]))
    for c in range(num_classes):
        best = [i for i in order if kept[i] and table["label"][i] == c][:CONTACT_PER_CLASS]
        sheet[c, : len(best)] = images[best]
    save_image_grid(out_dir / "selected_contact.png", sheet)  # one row per class, best first
