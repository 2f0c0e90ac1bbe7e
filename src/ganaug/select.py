"""Selection of synthetic images: score, label, keep the top K under per-class quotas.

The paper keeps 443 "high quality" fakes of about 2000 and splits them 101/96/84/80/82 into the 5
classes without saying how. This module makes that step explicit and auditable: every raw sample
gets a row in `selection.csv` with its scores, its label, whether it was kept and why.

Scores (columns of selection.csv):
- `critic`: the GAN critic's output (`gan.sample.critic_scores`, higher = judged more real); only
  when a checkpoint is given.
- the labeller: `select.labeller` (a registry name of `classify`) trained from scratch, without
  any evaluation, on the classic-augmented real train split only (never val/test).
  `labeller_label` is its argmax, `labeller_confidence` its top probability; its penultimate layer
  gives the features of `nn_feature` and of the fidelity metrics.
- `label`, the class a sample counts for: for labelled samples (conditional / per_class
  generators, raw.meta["labelled"] not False) the generator's class; `agree` says whether the
  labeller agrees, and with `select.require_agreement` disagreeing samples are dropped. For
  unconditional samples: the labeller's label.
- `confidence`: the labeller's probability of `label` (for unconditional samples this equals
  `labeller_confidence`), so a labelled sample the labeller doubts ranks low.
- `nn_pixel`: root-mean-square pixel difference (0..1 scale) to the nearest real train image (the
  originals), `nn_train_index` that image's row; `nn_feature`: Euclidean distance to the nearest
  real train image in labeller feature space.
- `nn_pixel_trained`, `nn_trained_index`: the same pixel distance and row for the nearest image of
  `trained_on`, the set the GAN trained on (in the pipeline classic.npz: the originals plus their
  flipped and jittered copies, so a generator that copies a flipped image is caught); only when
  `trained_on` is given.

Dropped before ranking (`reason`): `memorised` (nn_pixel or nn_pixel_trained <
select.min_nn_distance), `low_confidence` (confidence < select.min_confidence), `disagrees` (see
above).

Combined rank: `critic_rank` and `confidence_rank` are ordinal ranks over all raw samples (0 = the
highest score; equal scores ordered by index). `combined_rank` = (critic_weight * critic_rank +
confidence_weight * confidence_rank) / (critic_weight + confidence_weight); lower is better, ties
go to the lower index. Without a checkpoint the critic term is left out.

Quotas (`select.quota`, always summing to select.k): `balanced` K//C each, the remainder one each
to the first classes; `paper` 101/96/84/80/82 (5 classes only), scaled to K when K != 443;
`proportional` to the real train class counts; `inverse` proportional to 1/count (fills the rare
classes); or an explicit comma list (one count per class, summing to K). Shares are rounded by
largest remainder (exact fractions; ties to the lower class index). Each class keeps its best
eligible samples up to its quota; a class with too few keeps all it has, and the shortfall is
logged and recorded in meta["shortfall"] (not refilled from other classes: the class balance is
the point of the quota). Same inputs, config and seed give an identical selection.csv.

fidelity.json: KID, FID and precision/recall/density/coverage on the labeller's features, for the
raw and the selected sets, overall and per class (by `label`), against the real train split and,
reported apart and never used for selection, against the real test split; the memorisation block
(share of raw and of selected samples within select.min_nn_distance, and the MEMORISATION_PAIRS
closest pairs: index, seed, train_index or trained_index, distance, kept) for the originals at its
top level and for `trained_on` under "trained_on"; and, when select.inception_weights names a local
file, an Inception FID. memorisation.png shows the closest pairs (row 1 synthetic, row 2 nearest
original), memorisation_trained_on.png the same for `trained_on`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.augment import classic_augment
from ganaug.config import Config
from ganaug.data import ImageSet, require_train_only
from ganaug.metrics import (
    fidelity_report,
    frechet_distance,
    inception_features,
    inception_model,
    memorisation_summary,
    nearest_pixel_neighbours,
    pairwise_distances,
)
from ganaug.runtime import (
    atomic_write_json,
    atomic_write_text,
    fast_paths,
    make_generator,
    pick_device,
    provenance,
    safe_torch_load,
    save_image_grid,
)

log = logging.getLogger("ganaug")

PAPER_QUOTA = (101, 96, 84, 80, 82)  # the paper's split of its 443 kept fakes
CONTACT_PER_CLASS = 10  # images per class row of selected_contact.png
MEMORISATION_PAIRS = 8  # closest synthetic/reference pairs in memorisation*.png and fidelity.json


@dataclass
class Labeller:
    """A trained classifier as a function: uint8 images (N, H, W, C) -> (probs (N, C), features)."""

    name: str  # recorded in fidelity.json as the feature extractor
    predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


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


# ---------------------------------------------------------------------------------------------
# labeller and critic


def train_labeller(real: ImageSet, cfg: Config, device: torch.device) -> Labeller:
    """Train `select.labeller` on the classic-augmented real train split (no evaluation at all)."""
    require_train_only(real, "the real set", "the selection labeller")
    from ganaug.classify import build_model, predict, train_plain  # torchvision: imported late

    scfg = cfg.select
    aug = classic_augment(
        torch.from_numpy(real.images["train"]),
        torch.from_numpy(real.labels["train"]),
        cfg.augment,
        make_generator(scfg.seed),
    )
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(scfg.seed)
        model = build_model(scfg.labeller, real.num_classes, in_channels=real.image_shape[-1])
    fast = fast_paths(cfg.runtime, device)
    losses = train_plain(
        model,
        aug.images,
        aug.labels,
        epochs=scfg.labeller_epochs,
        lr=scfg.labeller_lr,
        batch_size=scfg.labeller_batch_size,
        seed=scfg.seed,
        device=device,
        fast=fast,
    )
    log.info("labeller %s: %d images, final loss %.4f", scfg.labeller, len(aug.labels), losses[-1])
    model.eval()
    return Labeller(
        name=f"{scfg.labeller} labeller penultimate layer (real train, classic-augmented)",
        predict=lambda images: predict(model, images, device=device, fast=fast),
    )


def score_critic(
    checkpoint: Path, images: np.ndarray, labels: np.ndarray | None, device: torch.device
) -> np.ndarray:
    """The GAN critic's score of each image (higher = judged more real)."""
    from ganaug.gan.sample import critic_scores

    return np.asarray(critic_scores(Path(checkpoint), images, labels, device=device), np.float64)


# ---------------------------------------------------------------------------------------------
# quotas and ranking


def largest_remainder(weights: list[Fraction] | list[int], total: int) -> list[int]:
    """Integer shares of `total` proportional to `weights` (exact; ties to the lower index)."""
    weights = [Fraction(w) for w in weights]
    if sum(weights) <= 0:
        raise InputError("select.quota: every class weight is zero; give an explicit list")
    exact = [w * total / sum(weights) for w in weights]
    shares = [int(e) for e in exact]  # floor: exact is non-negative
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def quota_counts(quota: str, k: int, train_counts: list[int]) -> list[int]:
    """Per-class numbers of kept samples for `select.quota` (see the module docstring)."""
    c = len(train_counts)
    if quota == "balanced":
        base, extra = divmod(k, c)
        return [base + (i < extra) for i in range(c)]
    if quota == "paper":
        if c != 5:
            raise InputError(
                f"select.quota=paper: the paper's 101/96/84/80/82 split needs 5 classes, the data "
                f"has {c}; use balanced, proportional, inverse or an explicit list"
            )
        return largest_remainder(list(PAPER_QUOTA), k)
    if quota == "proportional":
        return largest_remainder(train_counts, k)
    if quota == "inverse":
        return largest_remainder([Fraction(1, n) if n else Fraction(0) for n in train_counts], k)
    counts = [int(p) for p in quota.split(",")]
    if len(counts) != c:
        raise InputError(f"select.quota={quota}: {len(counts)} counts for {c} classes")
    if sum(counts) != k:
        raise InputError(f"select.quota={quota}: sums to {sum(counts)} but select.k is {k}")
    return counts


def ordinal_rank(values: np.ndarray) -> np.ndarray:
    """0 = highest value; equal values ordered by index; NaN ranks last."""
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((np.arange(len(values)), np.nan_to_num(-values, nan=np.inf)))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank


def select_top_k(
    combined: np.ndarray, labels: np.ndarray, eligible: np.ndarray, quotas: list[int]
) -> np.ndarray:
    """Bool mask (N,): per class, the eligible samples of lowest combined rank, up to its quota."""
    taken = [0] * len(quotas)
    kept = np.zeros(len(labels), dtype=bool)
    for i in np.lexsort((np.arange(len(labels)), combined)):
        c = int(labels[i])
        if eligible[i] and taken[c] < quotas[c]:
            kept[i] = True
            taken[c] += 1
    return kept


# ---------------------------------------------------------------------------------------------
# scoring table


def score_samples(
    raw: ImageSet,
    real: ImageSet,
    labeller: Labeller,
    cfg: Config,
    *,
    checkpoint: Path | None,
    device: torch.device,
    trained_on: ImageSet | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every score of every raw sample (one array per selection.csv column), plus features."""
    scfg = cfg.select
    images = raw.images["train"]
    n = len(images)
    labelled = raw.meta.get("labelled") is not False
    probs, feats = labeller.predict(images)
    feats_real = {
        s: labeller.predict(real.images[s])[1] for s in ("train", "test") if s in real.images
    }
    labeller_label = probs.argmax(1).astype(np.int64)
    label = raw.labels["train"].astype(np.int64) if labelled else labeller_label
    confidence = probs[np.arange(n), label].astype(np.float64)
    critic_labels = label if labelled else None
    critic = (
        score_critic(checkpoint, images, critic_labels, device)
        if checkpoint is not None
        else np.full(n, np.nan)
    )
    nearest = {}  # nn_pixel, nn_train_index (+ nn_pixel_trained, nn_trained_index)
    for ref, ref_images in reference_sets(real, trained_on).items():
        nearest[ref.distance], nearest[ref.index] = nearest_pixel_neighbours(
            images, ref_images, device=device
        )
    weights = (scfg.critic_weight if checkpoint is not None else 0.0, scfg.confidence_weight)
    confidence_rank = ordinal_rank(confidence)
    critic_rank = ordinal_rank(critic)
    combined = (weights[0] * critic_rank + weights[1] * confidence_rank) / max(sum(weights), 1e-12)
    seeds = raw.extras.get("train_seeds", np.full(n, -1, dtype=np.int64))
    table = {
        "index": np.arange(n),
        "seed": np.asarray(seeds, dtype=np.int64),
        "gen_label": raw.labels["train"] if labelled else np.full(n, -1),
        "labeller_label": labeller_label,
        "agree": np.where(labeller_label == label, "yes", "no") if labelled else np.full(n, ""),
        "label": label,
        "labeller_confidence": probs.max(1).astype(np.float64),
        "confidence": confidence,
        "critic": critic,
        "critic_rank": critic_rank if checkpoint is not None else np.full(n, -1),
        "confidence_rank": confidence_rank,
        "combined_rank": combined,
        **nearest,
        "nn_feature": pairwise_distances(feats, feats_real["train"]).min(axis=1),
    }
    return table, {"raw": feats, **feats_real}


def drop_reasons(table: dict[str, np.ndarray], cfg: Config) -> list[list[str]]:
    """Why each sample is ineligible ([] = eligible)."""
    scfg = cfg.select
    reasons: list[list[str]] = [[] for _ in table["index"]]
    nearest = np.stack([table[r.distance] for r in (ORIGINALS, TRAINED_ON) if r.distance in table])
    memorised = (nearest < scfg.min_nn_distance).any(axis=0)  # close to any reference set
    for i in range(len(reasons)):
        if memorised[i]:
            reasons[i].append("memorised")
        if table["confidence"][i] < scfg.min_confidence:
            reasons[i].append("low_confidence")
        if scfg.require_agreement and table["agree"][i] == "no":
            reasons[i].append("disagrees")
    return reasons


# ---------------------------------------------------------------------------------------------
# outputs


def selection_csv(
    table: dict[str, np.ndarray], kept: np.ndarray, reasons: list[list[str]], names: tuple[str, ...]
) -> str:
    """One row per raw sample: every score, label (and its name), kept yes/no, reason."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*table, "label_name", "kept", "reason"])
    for i in range(len(kept)):
        cells = [_cell(column[i]) for column in table.values()]
        reason = "kept" if kept[i] else "+".join(reasons[i]) or "quota_full"
        writer.writerow([*cells, names[table["label"][i]], "yes" if kept[i] else "no", reason])
    return buf.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.6g}"
    return str(value)


def fidelity_block(
    feats: dict[str, np.ndarray],
    fake_mask: np.ndarray,
    labels: np.ndarray,
    real: ImageSet,
    cfg: Config,
) -> dict[str, object]:
    """F of fidelity.json for the masked fakes: vs the real train split and (apart) vs test."""
    scfg = cfg.select
    kwargs = {
        "kid_subset_size": scfg.kid_subset_size,
        "kid_subsets": scfg.kid_subsets,
        "prdc_k": scfg.prdc_k,
        "seed": scfg.seed,
    }
    fake, fake_labels = feats["raw"][fake_mask], labels[fake_mask]
    return {
        f"vs_{split}": fidelity_report(
            feats[split], real.labels[split], fake, fake_labels, real.class_names, **kwargs
        )
        if split in feats
        else None
        for split in ("train", "test")
    }


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


def load_inception(weights: Path) -> torch.nn.Module:
    """torchvision inception_v3 from a local state-dict file (weights_only load)."""
    state = safe_torch_load(weights)
    try:
        return inception_model(state.get("state_dict", state) if isinstance(state, dict) else {})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:120]
        raise InputError(
            f"select.inception_weights={weights}: not torchvision inception_v3 weights ({first})"
        ) from None


def inception_block(
    raw: ImageSet, real: ImageSet, kept: np.ndarray, cfg: Config, device: torch.device
) -> dict[str, object]:
    """{"inception": FIDs of raw and selected vs train and test} when inception_weights is set."""
    weights = cfg.select.inception_weights
    if not weights:
        return {}
    model = load_inception(Path(weights)).to(device)
    fake = inception_features(model, raw.images["train"], device=device)
    splits = [s for s in ("train", "test") if s in real.images]  # val is never looked at
    ref = {s: inception_features(model, real.images[s], device=device) for s in splits}

    def fids(mask: np.ndarray) -> dict[str, float | None]:
        enough = mask.sum() >= 2
        return {
            f"vs_{s}": frechet_distance(r, fake[mask]) if enough else None for s, r in ref.items()
        }

    return {
        "inception": {
            "weights": weights,
            "note": "torchvision inception_v3 pool features; not comparable to published FIDs",
            "raw": fids(np.ones(len(kept), dtype=bool)),
            "selected": fids(kept),
        }
    }


# ---------------------------------------------------------------------------------------------
# the stage


def check_inputs(
    raw: ImageSet, real: ImageSet, cfg: Config, trained_on: ImageSet | None = None
) -> None:
    """Leakage guard and shape checks, before any work."""
    weights = cfg.select.inception_weights
    if weights and not Path(weights).is_file():
        raise InputError(f"select.inception_weights={weights}: file not found; give a local file")
    require_train_only(raw, "the synthetic samples", "selection")
    require_train_only(real, "the real set", "selection")
    if raw.image_shape != real.image_shape:
        raise InputError(
            f"samples are {raw.image_shape} images but the real set is {real.image_shape}; "
            "sample from a GAN trained at the real set's data.size"
        )
    if raw.num_classes != real.num_classes:
        raise InputError(
            f"samples have {raw.num_classes} classes but the real set {real.num_classes}; "
            "use the real set the GAN was trained on"
        )
    if trained_on is None:
        return
    where = "the set the GAN trained on (trained_on, --trained-on)"
    require_train_only(trained_on, where, "selection")
    if trained_on.image_shape != real.image_shape:
        raise InputError(
            f"{where} holds {trained_on.image_shape} images but the real set "
            f"{real.image_shape}; give the set the GAN trained on from this real set, e.g. "
            "classic.npz"
        )


def choose(
    table: dict[str, np.ndarray], quotas: list[int], names: tuple[str, ...], cfg: Config
) -> tuple[np.ndarray, list[list[str]], dict[str, dict[str, int]]]:
    """Eligibility and top K: kept mask (N,), drop reasons, per-class quota/kept/shortfall."""
    reasons = drop_reasons(table, cfg)
    eligible = np.array([not r for r in reasons])
    kept = select_top_k(table["combined_rank"], table["label"], eligible, quotas)
    got = np.bincount(table["label"][kept], minlength=len(names)).tolist()
    shortfall = {}
    for c, name in enumerate(names):
        if got[c] < quotas[c]:
            shortfall[name] = quotas[c] - got[c]
            log.warning(
                "select: class %s kept %d of its quota %d (%d short: too few eligible samples)",
                *(name, got[c], quotas[c], quotas[c] - got[c]),
            )
    counts = {
        "quota_counts": dict(zip(names, quotas, strict=True)),
        "kept_counts": dict(zip(names, got, strict=True)),
        "shortfall": shortfall,
    }
    return kept, reasons, counts


def select_samples(
    raw: ImageSet,
    real: ImageSet,
    cfg: Config,
    out_dir: Path,
    *,
    checkpoint: Path | None = None,
    device: torch.device | str | None = None,
    trained_on: ImageSet | None = None,
) -> ImageSet:
    """Score, label and select `raw`'s samples; write selection.csv, fidelity.json and figures.

    Only real's train split trains the labeller and drives the selection; its test split is used
    for the separately reported fidelity-vs-test numbers only. `trained_on` (train split only) is
    the set the GAN trained on, e.g. classic.npz: samples are then also checked for copies of its
    images. Returns the selected train-only set.
    """
    check_inputs(raw, real, cfg, trained_on)
    scfg, out_dir, names = cfg.select, Path(out_dir), real.class_names
    quotas = quota_counts(scfg.quota, scfg.k, real.class_counts("train"))  # bad quota: fail early
    dev = pick_device(str(device) if device is not None else cfg.runtime.device)
    labeller = train_labeller(real, cfg, dev)
    table, feats = score_samples(
        raw, real, labeller, cfg, checkpoint=checkpoint, device=dev, trained_on=trained_on
    )
    kept, reasons, counts = choose(table, quotas, names, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "selection.csv", selection_csv(table, kept, reasons, names))
    fidelity = {
        "feature_extractor": labeller.name,
        "raw": fidelity_block(feats, np.ones(len(kept), bool), table["label"], real, cfg),
        "selected": fidelity_block(feats, kept, table["label"], real, cfg),
        "memorisation": memorisation_block(table, kept, scfg.min_nn_distance),
        **inception_block(raw, real, kept, cfg, dev),
    }
    atomic_write_json(out_dir / "fidelity.json", fidelity)
    write_figures(out_dir, raw, reference_sets(real, trained_on), table, kept, real.num_classes)
    labelled = raw.meta.get("labelled") is not False
    meta = provenance(
        "select",
        source_splits={"train": ["synthetic"]},
        samples={k: raw.meta.get(k) for k in ("stage", "checkpoint", "gan_mode", "config_hash")},
        real_source=real.meta.get("source"),
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        config_hash=cfg.section_hash("select", "augment"),
        k=scfg.k,
        quota=scfg.quota,
        label_rule="generator class" if labelled else "labeller argmax",
        **counts,
        n_raw=len(kept),
        n_memorised=sum("memorised" in r for r in reasons),
        feature_extractor=labeller.name,
    )
    rows = np.flatnonzero(kept)
    extras = {"train_seeds": table["seed"][rows], "train_raw_index": rows.astype(np.int64)}
    log.info("select: kept %d of %d: %s", len(rows), len(kept), counts["kept_counts"])
    images, labels = {"train": raw.images["train"][rows]}, {"train": table["label"][rows]}
    return ImageSet(images, labels, names, meta, extras)
