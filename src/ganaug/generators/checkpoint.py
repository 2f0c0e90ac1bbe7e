"""A generator run's checkpoint, one format for every family (nanoGPT style: sampling rebuilds
the nets from the checkpoint alone).

`checkpoints/last.pt` holds the family's name, every unit's nets (`ckpt[net][unit]`, e.g. "G" and
"D"), their EMA copies (`"G_ema"`) and optimisers (`"opt_G"`), epoch/step, the resolved config,
`model_args`, class names, the package version, a fingerprint of the training data and all RNG
states, in types that `torch.load(weights_only=True)` accepts (numpy's RNG state is converted to
plain values). A checkpoint without a family (written before families existed) is a `wgan` one.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError, __version__, first_line
from ganaug.config import HASH_QUIET_DEFAULTS, Config
from ganaug.generators import get_family
from ganaug.generators.family import GeneratorFamily, Unit
from ganaug.runtime import atomic_torch_save, make_generator, safe_torch_load

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
    "sampler",  # the diffusion family's sampling settings: read at sampling time
    "sample_steps",
    "guidance",
    "eta",
)


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


def save_checkpoint(
    path: Path,
    family: GeneratorFamily,
    units: list[Unit],
    train_rng: torch.Generator,
    **info,
) -> None:
    """Atomically write every unit's state plus `info` (epoch, step, config, model_args, ...)."""
    ckpt: dict[str, Any] = {"format": FORMAT, "version": __version__, "family": family.name}
    for name in units[0].nets:
        ckpt[name] = [u.nets[name].state_dict() for u in units]
    for name in family.ema_nets:
        ckpt[f"{name}_ema"] = [u.ema[name].state_dict() for u in units if name in u.ema]
    for name in family.trained_nets:
        ckpt[f"opt_{name}"] = [u.opts[name].state_dict() for u in units]
    if any(u.state for u in units):  # the family's own counters (e.g. ADA's p)
        ckpt["unit_state"] = [dict(u.state) for u in units]
    ckpt.update(rng=rng_snapshot(train_rng), **info)
    atomic_torch_save(ckpt, path)


def family_of(ckpt: dict[str, Any]) -> GeneratorFamily:
    """The checkpoint's family; InputError naming the valid ones if this install lacks it."""
    return get_family(ckpt.get("family", "wgan"), where="the checkpoint's family")


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
    added = {key: value for (sec, key), value in HASH_QUIET_DEFAULTS.items() if sec == "gan"}
    old, new = {**added, **ckpt["config"]["gan"]}, cfg.to_dict()["gan"]  # keys added since
    changed = [k for k in new if k not in RESUMABLE_KEYS and old.get(k) != new[k]]
    if changed:
        pairs = ", ".join(f"gan.{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise InputError(f"{path}: made with another GAN config ({pairs}); {fix}")
    if ckpt["data_fingerprint"] != fingerprint:
        raise InputError(f"{path}: trained on different data (fingerprint differs); {fix}")


def restore_units(ckpt: dict[str, Any], path: Path, units: list[Unit]) -> None:
    try:
        for k, unit in enumerate(units):
            for name, net in unit.nets.items():
                net.load_state_dict(ckpt[name][k])
            for name, net in unit.ema.items():
                net.load_state_dict(ckpt[f"{name}_ema"][k])
            for name, opt in unit.opts.items():
                opt.load_state_dict(ckpt[f"opt_{name}"][k])
            unit.state.update(ckpt.get("unit_state", [{}] * len(units))[k])
    except (RuntimeError, KeyError, IndexError, ValueError) as err:
        first = first_line(err)
        raise InputError(f"{path}: state does not fit the nets ({first})") from None


def load_nets(
    path: Path, device: torch.device
) -> tuple[dict[str, Any], GeneratorFamily, list[dict[str, torch.nn.Module]]]:
    """Checkpoint, its family, and per unit its nets in eval mode, the sampling net holding its
    EMA weights when training kept them."""
    ckpt = load_checkpoint(path)
    family, args = family_of(ckpt), ckpt["model_args"]
    units = []
    init = make_generator(0)
    try:
        for k in range(args["units"]):
            nets = family.build_nets(args, init)
            for name, net in nets.items():
                ema = ckpt.get(f"{name}_ema") or []
                net.load_state_dict(ema[k] if ema else ckpt[name][k])
            units.append({name: net.to(device).eval() for name, net in nets.items()})
    except (RuntimeError, KeyError, IndexError) as err:
        first = first_line(err)
        raise InputError(f"{path}: damaged GAN checkpoint ({first}); train it again") from None
    return ckpt, family, units


def check_checkpoint(path: Path) -> None:
    """Refuse (InputError) a file that is not a loadable checkpoint of a known family."""
    load_nets(Path(path), torch.device("cpu"))
