"""Metrics as pure functions on numpy arrays.

Classification half: the MedMNIST metrics (accuracy, AUC) plus balanced accuracy, macro F1,
quadratic weighted kappa and the confusion matrix, all from `sklearn.metrics`; the wrappers fix
the label set and the values of degenerate cases (a class absent, a single class). Fidelity half:
KID / FID / precision, recall, density, coverage on features from a local network, and
memorisation distances.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# ============================================================================================
# classification metrics
# ============================================================================================
# Labels are int arrays (N,) with values 0..K-1; `prob` is (N, K) class probabilities. Each
# degenerate case scikit-learn would warn about (UndefinedMetricWarning, "y_pred contains
# classes not in y_true") is decided here instead, so no call below can warn. `num_classes`
# fixes the label set where one matters (confusion matrix, kappa's grade distances); balanced
# accuracy and macro F1 count only the classes seen and ignore it.


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; rows = true class, columns = predicted class."""
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).astype(np.int64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(skm.accuracy_score(y_true, y_pred))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in y_true (scikit-learn's definition).

    Macro recall over exactly those labels is what `balanced_accuracy_score` computes, but it
    warns whenever y_pred holds a class absent from y_true; naming the labels avoids that.
    """
    present = np.unique(y_true)
    return float(skm.recall_score(y_true, y_pred, labels=present, average="macro"))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean F1 over the classes in y_true or y_pred (F1 = 0 when tp = 0)."""
    return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0.0))


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights (i - j)^2 on the class indices (ordinal grades).

    `labels=0..K-1` makes the weights grade distances even when a grade never occurs. When
    y_true and y_pred hold one and the same class, chance agreement is perfect and kappa is
    0 / 0: reported as 0.0.
    """
    if np.unique(np.concatenate([np.ravel(y_true), np.ravel(y_pred)])).size < 2:
        return 0.0
    labels = np.arange(num_classes)
    return float(skm.cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))


def auc_medmnist(y_true: np.ndarray, prob: np.ndarray) -> float:
    """AUC as MedMNIST's `getAUC` computes it for multi-class tasks.

    Two classes: the AUC of the positive-class score. More: the mean of the one-vs-rest AUCs
    over classes (class i's score = prob[:, i]). A class absent from y_true (or making up all of
    it) has no AUC and is left out of the mean (MedMNIST would raise there); NaN if none has one.
    """
    y_true, prob = np.asarray(y_true), np.asarray(prob, np.float64)
    columns = [1] if prob.shape[1] == 2 else range(prob.shape[1])
    aucs = [
        skm.roc_auc_score(y_true == k, prob[:, k])
        for k in columns
        if 0 < np.count_nonzero(y_true == k) < len(y_true)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float | list]:
    """The metrics block M of metrics.json (the caller adds "loss")."""
    y_true, prob = np.asarray(y_true, np.int64), np.asarray(prob, np.float64)
    k = prob.shape[1]
    y_pred = prob.argmax(axis=1)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "auc": auc_medmnist(y_true, prob),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, k),
        "macro_f1": macro_f1(y_true, y_pred, k),
        "qwk": quadratic_weighted_kappa(y_true, y_pred, k),
        "confusion": confusion_matrix(y_true, y_pred, k).tolist(),
    }


# ============================================================================================
# fidelity metrics and memorisation
# ============================================================================================
# Features are rows of float arrays (N, D), e.g. a labeller's penultimate layer. Every function
# is pure: arrays in, numbers out; the only randomness (KID subsets) comes from an explicit seed.

import torch  # noqa: E402  (fidelity half only: pixel distances and the Inception extractor)

PRDC_KEYS = ("precision", "recall", "density", "coverage")


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, M) between the rows of `a` (N, D) and `b` (M, D), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID formula on given features: |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)).

    tr((S_r S_f)^(1/2)) is the sum of square roots of the eigenvalues of the symmetric
    S_r^(1/2) S_f S_r^(1/2) (same spectrum as S_r S_f), so two `eigh` calls replace `sqrtm`.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r = np.atleast_2d(np.cov(real, rowvar=False))
    s_f = np.atleast_2d(np.cov(fake, rowvar=False))
    with _one_blas_thread():
        w, v = np.linalg.eigh(s_r)
        root_r = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        middle = root_r @ s_f @ root_r
        eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    fid = ((mu_r - mu_f) ** 2).sum() + np.trace(s_r) + np.trace(s_f) - 2.0 * tr_covmean
    return float(max(fid, 0.0))


def _one_blas_thread():
    """Multi-threaded OpenBLAS eigh on busy CPUs runs ~100x slower (512 dims: 7 s, not 0.07 s)."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel k(x, y) = (x . y / D + 1)^3, (N, M)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples (m, D) under the polynomial kernel."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, *, subset_size: int, subsets: int, seed: int
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of unbiased MMD^2 over random subsets.

    Subsets of size min(subset_size, n_real, n_fake), drawn without replacement from a numpy
    generator seeded with `seed`. Needs at least 2 rows on each side.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            real[rng.choice(len(real), m, replace=False)],
            fake[rng.choice(len(fake), m, replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k nearest neighbours.

    Radius of a point = distance to its k-th nearest neighbour in its own set (itself excluded).
    precision: share of fakes inside some real ball; recall: share of reals inside some fake
    ball; density: mean number of real balls holding a fake, / k; coverage: share of real balls
    holding at least one fake. "Inside" is strict (<), as in the authors' code.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"PRDC with k={k} needs more than k samples per set")
    real_radius = np.partition(pairwise_distances(real, real), k, axis=1)[:, k]  # (R,)
    fake_radius = np.partition(pairwise_distances(fake, fake), k, axis=1)[:, k]  # (F,)
    cross = pairwise_distances(real, fake)  # (R, F)
    inside_real = cross < real_radius[:, None]  # fake j inside the ball of real i
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((cross < fake_radius[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((cross.min(axis=1) < real_radius).mean()),
    }


def knn_realism(real: np.ndarray, fake: np.ndarray, k: int) -> np.ndarray:
    """Realism score of each fake (Kynkäänniemi et al. 2019): max over real i of
    radius_i / |fake - real_i|, radius_i being real i's distance to its k-th nearest real
    neighbour; as in the paper, the half of the real balls with the largest radii is left out
    (outliers). Above 1: inside some real ball; higher = more typical of the real set. (F,)."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if len(real) <= k:
        raise ValueError(f"k-NN realism with k={k} needs more than k real samples")
    radius = np.partition(pairwise_distances(real, real), k, axis=1)[:, k]  # (R,)
    keep = radius <= np.median(radius)
    cross = pairwise_distances(real[keep], fake)  # (R', F)
    return (radius[keep][:, None] / np.maximum(cross, 1e-12)).max(axis=0)


def fidelity_summary(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    prdc_k: int,
    seed: int,
) -> dict[str, object]:
    """KID, FID and PRDC of one fake set against one real set; None where a set is too small.

    PRDC's k is capped at min(n_real, n_fake) - 1 for small (per-class) sets; the k used is
    recorded as `prdc_k`.
    """
    n_real, n_fake = len(real), len(fake)
    out: dict[str, object] = {"n": n_fake, "n_real": n_real}
    out.update(dict.fromkeys(("kid_mean", "kid_std", "fid", *PRDC_KEYS)))
    out["prdc_k"] = None
    if min(n_real, n_fake) < 2:
        return out
    out["kid_mean"], out["kid_std"] = kernel_inception_distance(
        real, fake, subset_size=kid_subset_size, subsets=kid_subsets, seed=seed
    )
    out["fid"] = frechet_distance(real, fake)
    k = min(prdc_k, n_real - 1, n_fake - 1)
    out.update(prdc(real, fake, k))
    out["prdc_k"] = k
    return out


def fidelity_report(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    **kwargs: int,
) -> dict[str, object]:
    """{"overall": summary, "per_class": {name: summary}}; kwargs go to `fidelity_summary`."""
    per_class = {
        name: fidelity_summary(real[real_labels == c], fake[fake_labels == c], **kwargs)
        for c, name in enumerate(class_names)
    }
    return {"overall": fidelity_summary(real, fake, **kwargs), "per_class": per_class}


def nearest_pixel_neighbours(
    fake: np.ndarray, real: np.ndarray, *, device: str | torch.device = "cpu", batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Per fake image: root-mean-square pixel difference (0..1 scale) to its nearest real image.

    `fake` (N, H, W, C) and `real` (M, H, W, C) uint8 of equal shape. Returns distances float64
    (N,) and the row (N,) of the nearest real image (lowest row on ties). Squared distances come
    from |x|^2 + |r|^2 - 2 x.r in float64: exact on integer pixels, so an exact copy gives 0, and
    a matrix product rather than an (N, M, D) difference (seconds for 2000 x 1080 at 64x64x3).
    """
    dtype = torch.float64 if torch.device(device).type != "mps" else torch.float32
    ref = torch.from_numpy(np.ascontiguousarray(real)).to(device).reshape(len(real), -1).to(dtype)
    ref_sq = (ref * ref).sum(dim=1)  # (M,)
    scale = 255.0**2 * ref.shape[1]
    dist, index = [], []
    for start in range(0, len(fake), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(fake[start : start + batch_size]))
        x = chunk.to(device).reshape(len(chunk), -1).to(dtype)
        sq = (x * x).sum(dim=1, keepdim=True) + ref_sq - 2.0 * (x @ ref.T)  # (B, M)
        best = sq.clamp_min(0).min(dim=1)
        dist.append(np.sqrt(best.values.double().cpu().numpy() / scale))
        index.append(best.indices.cpu().numpy())
    return np.concatenate(dist), np.concatenate(index).astype(np.int64)


def memorisation_summary(distances: np.ndarray, threshold: float) -> dict[str, object]:
    """How many samples lie closer than `threshold` to a training image (pixel distance)."""
    distances = np.asarray(distances, dtype=np.float64)
    within = int((distances < threshold).sum())
    empty = len(distances) == 0
    return {
        "n": len(distances),
        "n_within": within,
        "fraction_within": None if empty else within / len(distances),
        "min_distance": None if empty else float(distances.min()),
        "median_distance": None if empty else float(np.median(distances)),
    }


def inception_model(state_dict: dict) -> torch.nn.Module:
    """torchvision's inception_v3 with `state_dict` loaded (aux head dropped), fc -> identity.

    A state dict that does not fit raises RuntimeError (torch's load_state_dict message).
    """
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=False, init_weights=False)
    model.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("AuxLogits.")})
    model.fc = torch.nn.Identity()  # (B, 2048) pooled features instead of logits
    return model.eval()


def inception_features(
    model: torch.nn.Module, images: np.ndarray, *, device: str = "cpu", size: int = 299
) -> np.ndarray:
    """(N, 2048) pool features of uint8 images (N, H, W, C), resized bilinearly to `size` and
    ImageNet-normalised. torchvision's Inception, not the TF-Inception of published FIDs: its
    numbers compare within this tool only.
    """
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + 64])).to(device)
            x = x.permute(0, 3, 1, 2).float().div(255.0).expand(-1, 3, -1, -1)  # (B, 3, H, W)
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")
            out.append(model((x - mean) / std).double().cpu().numpy())
    return np.concatenate(out)
