"""The classifier registry: the paper's ResNet / DenseNet (torchvision), built by name.

Paper: ResNet-101 and DenseNet-121 in PyTorch. Where it is silent (our settings, PAPER.md): the
architectures are torchvision's, initialised from scratch (weights are never downloaded);
`classify.weights` loads a local state dict, where ImageNet's 1000-class head is replaced and a
3-channel stem summed for gray input.

Every model is a builder registered with `@register_classifier(name, family)`. Its `Family` says
where the architecture keeps the two layers ganaug adapts: the stem (the first convolution,
replaced for 1-channel input) and the head (the last linear layer, whose input is the penultimate
feature of `predict`, and which is kept fresh when loaded weights have another class count).
Adding a classifier touches this file alone: one decorated builder, plus a Family when its
architecture is neither a ResNet nor a DenseNet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from ganaug import InputError
from ganaug.runtime import safe_torch_load

# what a GAN checkpoint's "format" starts with (gan/state.py's FORMAT without its version):
# such a file is refused by name where a classifier checkpoint or state dict is expected
GAN_FORMAT_PREFIX = "ganaug-gan"


def _same_key(key: str) -> str:
    return key


@dataclass(frozen=True)
class Family:
    """Where one family of architectures keeps its stem and its head."""

    name: str  # e.g. "resnet"
    arch: type[nn.Module]  # the class every builder of the family returns (predict looks it up)
    stem: str  # dotted path of the first nn.Conv2d, e.g. "features.conv0"
    head: str  # dotted path of the final nn.Linear (B, D) -> (B, K), e.g. "fc"
    upgrade_key: Callable[[str], str] = _same_key  # state-dict key of older files -> today's

    def stem_of(self, model: nn.Module) -> nn.Conv2d:
        return model.get_submodule(self.stem)

    def head_of(self, model: nn.Module) -> nn.Linear:
        return model.get_submodule(self.head)

    def replace_stem(self, model: nn.Module, conv: nn.Conv2d) -> None:
        parent, _, attr = self.stem.rpartition(".")
        setattr(model.get_submodule(parent), attr, conv)


# old torchvision DenseNet files name layers "norm.1"; today's modules are "norm1"
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _densenet_key(key: str) -> str:
    return _DENSENET_OLD_KEY.sub(r"\1\2", key)


RESNET = Family("resnet", tvm.ResNet, stem="conv1", head="fc")
DENSENET = Family(
    "densenet", tvm.DenseNet, stem="features.conv0", head="classifier", upgrade_key=_densenet_key
)


@dataclass(frozen=True)
class Classifier:
    """One registry entry."""

    build: Callable[[int], nn.Module]  # num_classes -> a fresh 3-channel model (global RNG init)
    family: Family


MODELS: dict[str, Classifier] = {}  # name -> entry, in registration order (the names users see)


def register_classifier(
    name: str, family: Family
) -> Callable[[Callable[[int], nn.Module]], Callable[[int], nn.Module]]:
    """Decorator: register `build(num_classes)` as classifier `name` of `family`."""

    def register(build: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        if name in MODELS:
            raise ValueError(f"classifier {name!r} registered twice")
        MODELS[name] = Classifier(build, family)
        return build

    return register


@register_classifier("resnet18", RESNET)
def resnet18(num_classes: int) -> nn.Module:
    return tvm.resnet18(weights=None, num_classes=num_classes)


@register_classifier("resnet50", RESNET)
def resnet50(num_classes: int) -> nn.Module:
    return tvm.resnet50(weights=None, num_classes=num_classes)


@register_classifier("resnet101", RESNET)
def resnet101(num_classes: int) -> nn.Module:
    return tvm.resnet101(weights=None, num_classes=num_classes)


@register_classifier("densenet121", DENSENET)
def densenet121(num_classes: int) -> nn.Module:
    return tvm.densenet121(weights=None, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# building, adapting and loading


def classifier(name: str) -> Classifier:
    """The registry entry of `name`; InputError listing the valid names when unknown."""
    if name not in MODELS:
        raise InputError(
            f"classify.model {name!r}: unknown model; valid names: {', '.join(MODELS)}"
        )
    return MODELS[name]


def family_of(model: nn.Module) -> Family:
    """The family whose architecture `model` is an instance of."""
    for entry in MODELS.values():
        if isinstance(model, entry.family.arch):
            return entry.family
    raise TypeError(f"{type(model).__name__} is no registry classifier; build it by name")


def build_model(name: str, num_classes: int, in_channels: int = 3, weights: str = "") -> nn.Module:
    """A registry model for `num_classes` outputs and 1- or 3-channel input (global RNG init)."""
    entry = classifier(name)
    model = entry.build(num_classes)
    if in_channels != 3:
        old = entry.family.stem_of(model)
        new = nn.Conv2d(
            in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
        )
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        entry.family.replace_stem(model, new)
    if weights:
        load_weights(model, Path(weights), name)
    return model


def refuse_gan_checkpoint(ckpt: Any, path: Path | str, fix: str) -> None:
    """A GAN checkpoint where a classifier's is expected: one line saying which kind it is."""
    if isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith(GAN_FORMAT_PREFIX):
        raise InputError(
            f"{path}: a ganaug GAN checkpoint (of `ganaug gan train`), not a classifier one; "
            f"`ganaug gan sample --checkpoint` and `ganaug select --checkpoint` take it; {fix}"
        )


def load_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load a local state dict (or a ganaug best.pt / last.pt) into `model`; InputError if unfit."""
    family = classifier(name).family
    state = safe_torch_load(path)
    refuse_gan_checkpoint(state, path, f"give classify.weights a {name} state dict")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a ganaug checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors; save model.state_dict()")
    state = {family.upgrade_key(k): v for k, v in state.items()}
    own = model.state_dict()
    stem_key = f"{family.stem}.weight"
    stem = state.get(stem_key)
    if stem is not None and stem.ndim == 4 and stem.shape[1] == 3 and own[stem_key].shape[1] == 1:
        state[stem_key] = stem.sum(dim=1, keepdim=True)  # RGB filters -> gray (timm's rule)
    head = f"{family.head}."
    kept_head = [k for k in own if k.startswith(head) and k in state]
    if any(state[k].shape != own[k].shape for k in kept_head):
        for k in kept_head:  # another class count (e.g. ImageNet's 1000): keep our fresh head
            state.pop(k)
    missing = sorted(k for k in own if k not in state and not k.startswith(head))
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        first = (missing + unexpected + wrong)[0]
        raise InputError(
            f"{path}: does not fit {name} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} wrong-shape keys, e.g. {first!r}); give weights saved from "
            f"torchvision's {name} or unset classify.weights"
        )
    model.load_state_dict(state, strict=False)  # only a replaced head may be absent


def load_classifier(path: Path | str, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a classifier from a ganaug best.pt / last.pt alone (eval mode, on `device`)."""
    ckpt = safe_torch_load(path)
    refuse_gan_checkpoint(ckpt, path, "give a classifier's best.pt or last.pt")
    try:
        model = build_model(ckpt["model_name"], ckpt["num_classes"], ckpt["in_channels"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise InputError(f"{path}: not a ganaug classifier checkpoint ({err})") from None
    return model.to(device).eval()
