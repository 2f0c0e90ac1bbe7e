"""Fast paths of the training loops: bf16 autocast, channels_last, fused optimisers, compile,
pinned host copies.

CUDA by default; each one can be forced on any device, which the tests do on CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class FastPaths:
    """Which speed-ups a training loop uses; `fast_paths` resolves them from runtime.*.

    Each path changes speed, not meaning: tests compare each with the plain path on CPU.
    """

    amp: bool = False  # bf16 autocast of forward passes (losses and optimiser state stay float32)
    channels_last: bool = False  # NHWC memory format for convolution weights and inputs
    fused: bool = False  # fused (Adam) or multi-tensor (RMSprop) optimiser kernels
    compile: bool = False  # torch.compile the networks' forward
    pin_memory: bool = False  # page-locked host batches before a host -> device copy

    def describe(self) -> str:
        on = [name for name in self.__dataclass_fields__ if getattr(self, name)]
        return ", ".join(on) or "none (plain path)"


PLAIN = FastPaths()  # no speed-ups: the reference every fast path is tested against


def fast_paths(runtime: Any, device: torch.device) -> FastPaths:
    """The paths in effect for `runtime` (a RuntimeConfig) on `device`.

    amp, channels_last, fused and pin_memory apply on CUDA only (on a CPU they cost speed or
    change nothing); compile applies wherever it is asked for (CPU needs a C++ compiler).
    """
    cuda = device.type == "cuda"
    return FastPaths(
        amp=runtime.amp and cuda,
        channels_last=runtime.channels_last and cuda,
        fused=runtime.fused and cuda,
        compile=runtime.compile,
        pin_memory=cuda,
    )


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """bf16 autocast on `device` when enabled, else a no-op context."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def prepare_module(module: torch.nn.Module, fast: FastPaths) -> torch.nn.Module:
    """channels_last weights and a compiled forward (`Module.compile`), both in place.

    In place keeps state-dict keys, checkpoints, EMA copies and DDP wrapping unchanged; returns
    `module` for chaining. Call it before wrapping in DDP (gradient buckets follow the layout).
    """
    if fast.channels_last:
        module.to(memory_format=torch.channels_last)
    if fast.compile:
        module.compile()
    return module


def as_input(x: torch.Tensor, fast: FastPaths) -> torch.Tensor:
    """A float (B, C, H, W) batch in the memory format the prepared module expects."""
    return x.contiguous(memory_format=torch.channels_last) if fast.channels_last else x


def to_device(x: torch.Tensor, device: torch.device, fast: FastPaths) -> torch.Tensor:
    """Host -> device copy; pinned and asynchronous when fast.pin_memory and x is on the host."""
    if fast.pin_memory and x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def make_optimiser(
    kind: str, params: Iterable[torch.nn.Parameter], fast: FastPaths, **kwargs: Any
) -> torch.optim.Optimizer:
    """`adam` or `rmsprop` with fused (Adam) / multi-tensor (RMSprop) kernels when fast.fused."""
    if kind == "adam":
        return torch.optim.Adam(params, fused=True if fast.fused else None, **kwargs)
    if kind == "rmsprop":  # torch has no fused RMSprop: the multi-tensor kernel instead
        return torch.optim.RMSprop(params, foreach=True if fast.fused else None, **kwargs)
    raise ValueError(f"unknown optimiser {kind!r}")
