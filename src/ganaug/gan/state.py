"""The trainable state of a GAN run and its checkpoint (nanoGPT style: `sample.py` rebuilds the
nets from the checkpoint alone).

A run holds one `GanUnit` (generator, critic, optional EMA generator, two optimisers) for the
unconditional and conditional modes, and one per class for `per_class`. `checkpoints/last.pt`
holds every unit's state, epoch/step, the resolved config, `model_args`, class names, the package
version, a fingerprint of the training data and all RNG states, in types that
`torch.load(weights_only=True)` accepts (numpy's RNG state is converted to plain values).
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError, __version__
from ganaug.config import Config, GanConfig
from ganaug.gan.nets import Critic, Generator, base_side, build_pair
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    atomic_torch_save,
    make_generator,
    make_optimiser,
    prepare_module,
    safe_torch_load,
)

FORMAT = "ganaug-gan-1"
# gan keys that may change between a checkpoint and its resumption (schedule length, outputs)
RESUMABLE_KEYS = (
    "epochs_lr1",
    "epochs_lr2",
    "grid_every",
    "ckpt_every",
    "nan_policy",
    "max_nan_skips",
    "n_samples",
    "sample_seed",
)


@dataclass
class GanUnit:
    """One GAN: all classes (unconditional, conditional) or one class (per_class)."""

    generator: Generator
    critic: Critic
    ema: Generator | None  # EMA of the generator's weights (gan.ema_decay > 0), used for sampling
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rows: torch.Tensor  # int64 (M,): rows of the training tensors this GAN trains on
    label: int | None  # per_class: the class it generates; otherwise None

    @property
    def sampler(self) -> Generator:
        return self.ema if self.ema is not None else self.generator


def model_args(image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict[str, Any]:
    """Everything needed to rebuild the nets; stored in the checkpoint."""
    h, w, c = image_shape
    if h != w:
        raise InputError(f"GAN training needs square images, got {h}x{w}; resize the data")
    base_side(h)
    batch_norm = g.critic_norm == "batch" or (g.critic_norm == "auto" and g.loss == "wgan")
    return {
        "mode": g.mode,
        "z_dim": g.z_dim,
        "z_dist": g.z_dist,
        "width": g.width,
        "size": h,
        "channels": c,
        "num_classes": num_classes,
        "critic_batch_norm": batch_norm,
        "units": num_classes if g.mode == "per_class" else 1,
    }


def make_optimizer(params: Any, g: GanConfig, fast: FastPaths = PLAIN) -> torch.optim.Optimizer:
    """WGAN recipe: RMSprop; WGAN-GP recipe: Adam with (adam_beta1, adam_beta2)."""
    if g.loss == "wgan":
        return make_optimiser("rmsprop", params, fast, lr=g.lr)
    return make_optimiser("adam", params, fast, lr=g.lr, betas=(g.adam_beta1, g.adam_beta2))


def build_units(
    args: dict[str, Any],
    g: GanConfig,
    labels: torch.Tensor,
    device: torch.device,
    fast: FastPaths = PLAIN,
) -> list[GanUnit]:
    """Fresh units with DCGAN initialisation from a generator seeded by gan.seed.

    `fast` prepares the nets in place (channels_last, compiled forward) and picks the optimiser
    kernels. The critic is compiled only with loss wgan: torch.compile has no double backward,
    which the gradient penalty needs. The EMA copy (sampling only) stays plain.
    """
    init = make_generator(g.seed)
    units = []
    for k in range(args["units"]):
        gen, critic = build_pair(args, init)
        gen, critic = gen.to(device), critic.to(device)
        ema = copy.deepcopy(gen).eval().requires_grad_(False) if g.ema_decay > 0 else None
        prepare_module(gen, fast)
        prepare_module(critic, replace(fast, compile=fast.compile and g.loss == "wgan"))
        per_class = args["mode"] == "per_class"
        rows = torch.nonzero(labels == k).flatten() if per_class else torch.arange(len(labels))
        units.append(
            GanUnit(
                gen,
                critic,
                ema,
                make_optimizer(gen.parameters(), g, fast),
                make_optimizer(critic.parameters(), g, fast),
                rows.to(device),
                k if per_class else None,
            )
        )
    return units


@torch.no_grad()
def ema_update(ema: Generator, model: Generator, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model; buffers (batch-norm statistics) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of the training images and labels: a resume must see the same data."""
    digest = hashlib.sha256(images.contiguous().numpy().tobytes())
    digest.update(labels.numpy().astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# RNG states in weights_only-safe types


def rng_snapshot(train_rng: torch.Generator) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "train": train_rng.get_state(),
        "torch": torch.get_rng_state(),
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], train_rng: torch.Generator) -> None:
    """Continue every random stream where the checkpoint left it (global ones included, so any
    code that does use them resumes identically)."""
    train_rng.set_state(state["train"])
    torch.set_rng_state(state["torch"])
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# checkpoint


def save_checkpoint(path: Path, units: list[GanUnit], train_rng: torch.Generator, **info) -> None:
    """Atomically write every unit's state plus `info` (epoch, step, config, model_args, ...)."""
    ckpt = {
        "format": FORMAT,
        "version": __version__,
        "G": [u.generator.state_dict() for u in units],
        "D": [u.critic.state_dict() for u in units],
        "G_ema": [u.ema.state_dict() for u in units if u.ema is not None],
        "opt_G": [u.opt_g.state_dict() for u in units],
        "opt_D": [u.opt_d.state_dict() for u in units],
        "rng": rng_snapshot(train_rng),
        **info,
    }
    atomic_torch_save(ckpt, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a GAN checkpoint with weights_only=True; anything else is an InputError."""
    ckpt = safe_torch_load(path)
    if isinstance(ckpt, dict) and "model_name" in ckpt and "format" not in ckpt:
        raise InputError(
            f"{path}: a ganaug classifier checkpoint ({ckpt['model_name']}), not a GAN one; "
            "`ganaug classify` takes it (classify.weights); give `gan sample` and "
            "`select --checkpoint` the checkpoints/last.pt of `ganaug gan train`"
        )
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(
            f"{path}: not a ganaug GAN checkpoint (format {FORMAT}); "
            "give DIR/checkpoints/last.pt written by `ganaug gan train`"
        )
    return ckpt


def check_resumable(
    ckpt: dict[str, Any], path: Path, args: dict[str, Any], cfg: Config, fingerprint: str
) -> None:
    """A checkpoint made by another architecture, config or data set is refused, clearly."""
    fix = f"use another --out, or delete {path.parent} to start over"
    if ckpt["model_args"] != args:
        diff = {k: (ckpt["model_args"].get(k), v) for k, v in args.items()}
        diff = {k: v for k, v in diff.items() if v[0] != v[1]}
        raise InputError(f"{path}: made for another architecture {diff} (was, now); {fix}")
    old, new = ckpt["config"]["gan"], cfg.to_dict()["gan"]
    changed = [k for k in new if k not in RESUMABLE_KEYS and old.get(k) != new[k]]
    if changed:
        pairs = ", ".join(f"gan.{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise InputError(f"{path}: made with another GAN config ({pairs}); {fix}")
    if ckpt["data_fingerprint"] != fingerprint:
        raise InputError(f"{path}: trained on different data (fingerprint differs); {fix}")


def restore_units(ckpt: dict[str, Any], path: Path, units: list[GanUnit]) -> None:
    try:
        for k, unit in enumerate(units):
            unit.generator.load_state_dict(ckpt["G"][k])
            unit.critic.load_state_dict(ckpt["D"][k])
            if unit.ema is not None:
                unit.ema.load_state_dict(ckpt["G_ema"][k])
            unit.opt_g.load_state_dict(ckpt["opt_G"][k])
            unit.opt_d.load_state_dict(ckpt["opt_D"][k])
    except (RuntimeError, KeyError, IndexError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise InputError(f"{path}: state does not fit the nets ({first})") from None


def load_nets(
    path: Path, device: torch.device
) -> tuple[dict[str, Any], list[Generator], list[Critic]]:
    """Checkpoint, its sampling generators (EMA when present) and critics, in eval mode."""
    ckpt = load_checkpoint(path)
    args = ckpt["model_args"]
    gens, critics = [], []
    init = make_generator(0)
    try:
        for k in range(args["units"]):
            gen, critic = build_pair(args, init)
            gen.load_state_dict(ckpt["G_ema"][k] if ckpt["G_ema"] else ckpt["G"][k])
            critic.load_state_dict(ckpt["D"][k])
            gens.append(gen.to(device).eval())
            critics.append(critic.to(device).eval())
    except (RuntimeError, KeyError, IndexError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise InputError(f"{path}: damaged GAN checkpoint ({first}); train it again") from None
    return ckpt, gens, critics
