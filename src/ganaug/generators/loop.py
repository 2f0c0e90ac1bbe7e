"""The one training loop of every generator family (PAPER.md "GAN training": batch 8, lr 1e-4 for
800 epochs then 5e-5 for 600, train split only).

An epoch is one pass over the (classically augmented) train images in a fresh random order: the
family's train_step takes the next real batch as often as it needs (the WGAN: one per critic step,
`n_critic` per generator step), so an epoch has N / (batch_size * real_batches_per_step) steps.
`per_class` runs one such epoch per class unit. The learning rate is a function of the epoch
(gan.lr up to epochs_lr1, then gan.lr2), so there is no scheduler state to save.

Output directory: checkpoints/last.pt (every gan.ckpt_every epochs and at the end; rerunning on
the directory resumes), log.csv, grids/epoch_NNNN.png (fixed noise; rows = classes when the
generator has labels), reals.png, tb/ (TensorBoard). Randomness: one explicit generator (seeded
gan.seed + 1) drives batching and everything random in the family's steps (latents, penalties,
DiffAugment); an interrupted run resumed from its checkpoint ends bitwise identical (on CPU) to an
uninterrupted one.

Fast paths (runtime.*, CUDA by default): bf16 autocast of the forwards, with the gradient
penalty's critic pass and every loss in float32; channels_last nets and real batches; fused Adam /
multi-tensor RMSprop; `runtime.compile` as the family allows (family.prepare). No DDP wrapper: see
scale-out below.

Scale-out (StyleGAN3's loop instead of DDP): under `torchrun --nproc_per_node=N` rank 0's
parameters are broadcast at the start, and after every backward the family averages the gradients
of the net being stepped over the ranks (runtime.all_reduce_mean_grads) before its optimiser
step, so every rank holds the same weights. gan.batch_size stays the global batch: each epoch's
row order is rank 0's, each rank takes the shard order[rank::N] and batches of batch_size / N.
Rank r draws its latents, fake labels and augmentations from its own generator, seeded
gan.seed + 1 + r * 1000003 (rank 0 keeps a one-process run's seed). Batch-norm running statistics
stay per rank; rank 0 alone writes log.csv (its own losses; images_per_s counts all ranks), grids
and checkpoints, which also hold every rank's generator state, so a resumed N-process run
continues every rank's stream.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.board import Board
from ganaug.config import Config, GanConfig, save_config
from ganaug.data import ImageSet, require_train_only
from ganaug.generators import get_family
from ganaug.generators.checkpoint import (
    check_resumable,
    data_fingerprint,
    load_checkpoint,
    restore_rng,
    restore_units,
    save_checkpoint,
)
from ganaug.generators.diffaug import parse_policy
from ganaug.generators.family import (
    GeneratorFamily,
    Step,
    Unit,
    build_units,
    ema_update,
    from_uint8,
    to_uint8,
)
from ganaug.generators.monitor import LOG_COLUMNS, EpochStats, LossLog, NanGuard, TrainingDiverged
from ganaug.generators.sample import class_rows
from ganaug.runtime import (
    as_input,
    broadcast_from_main,
    broadcast_params,
    dist_info,
    fast_paths,
    gather_objects,
    init_distributed,
    is_main,
    make_generator,
    pick_device,
    progress,
    save_image_grid,
)

log = logging.getLogger("ganaug")

__all__ = ["LOG_COLUMNS", "TrainingDiverged", "train_gan"]

GRID_COLS = 8
KEYS = ("epoch", "step")  # log.csv columns that are not values to plot
RANK_SEED_STRIDE = 1_000_003  # rank r's training generator: gan.seed + 1 + r * RANK_SEED_STRIDE


def train_gan(
    data: ImageSet,
    cfg: Config,
    out_dir: Path,
    *,
    source: str = "",
    device: torch.device | str | None = None,
    stop_after: int | None = None,
    config_file: Path | None = None,
) -> Path:
    """Train (or resume) the `gan.family` generator on data's train split; returns
    out_dir/checkpoints/last.pt.

    `stop_after` ends the run after that epoch, with a checkpoint, as an interruption would.
    `config_file` receives the resolved config once the data and any checkpoint checked out, so a
    refused run (bad input, another config's checkpoint) writes nothing.
    """
    g, out_dir, where = cfg.gan, Path(out_dir), source or "the GAN training data"
    family = get_family(g.family)
    require_train_only(data, where, "GAN training")
    device = torch.device(device) if device is not None else pick_device(cfg.runtime.device)
    device, world = init_distributed(device), dist_info().world  # torchrun: this rank's device
    images, labels = training_tensors(data, g, where)
    check_shardable(labels, g, world)
    args = family.model_args(tuple(images.shape[1:]), data.num_classes, g)
    fingerprint = data_fingerprint(images, labels)
    fast = fast_paths(cfg.runtime, device)
    units = build_units(family, args, g, labels, device, fast)
    rng = make_generator(g.seed + 1 + RANK_SEED_STRIDE * dist_info().rank, device)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    epoch, step, skips = resume(ckpt_path, units, rng, args, cfg, fingerprint)
    if epoch >= g.epochs:
        return ckpt_path
    log.info("GAN on %s; fast paths: %s", device, fast.describe())
    for unit in units:  # every rank starts from rank 0's weights
        for net in [*unit.nets.values(), *unit.ema.values()]:
            broadcast_params(net)
    main = is_main()  # rank 0 (or the only process) writes every file
    if config_file is not None and main:
        save_config(cfg, config_file)
    if main:
        reals = class_rows(images.numpy(), labels.numpy(), data.num_classes, GRID_COLS)
        save_image_grid(out_dir / "reals.png", reals)
    columns = LOG_COLUMNS + family.log_columns
    loss_log = LossLog(out_dir / "log.csv", keep_through=epoch, columns=columns) if main else None
    guard = NanGuard(g, ckpt_path, epoch if ckpt_path.is_file() else None, skips)
    x, y = images.to(device), labels.to(device)  # uint8 (N, H, W, C), int64 (N,)
    policy = parse_policy(g.diffaug)
    conditional = args["mode"] == "conditional"
    info = {
        "model_args": args,
        "config": cfg.to_dict(),
        "config_hash": cfg.section_hash("data", "augment", "gan"),
        "class_names": list(data.class_names),
        "data_fingerprint": fingerprint,
        "source": source,
    }
    board = Board(out_dir, cfg.runtime.tensorboard, resumed_at=step)  # closed on any exit
    with board:
        bar = progress(range(epoch + 1, g.epochs + 1), initial=epoch, total=g.epochs, desc="gan")
        for epoch in bar:
            lr = g.lr if epoch <= g.epochs_lr1 else g.lr2
            guard.epoch, started, stats = epoch, time.perf_counter(), EpochStats()
            for unit in units:
                for opt in unit.opts.values():
                    for group in opt.param_groups:
                        group["lr"] = lr
                epoch_ctx = Step(g, _no_batch, _no_batch, policy, rng, stats, guard, fast)
                step = train_epoch(family, unit, x, y, epoch_ctx, step, board, conditional)

            # maintenance: log, grid, checkpoint
            row = stats.row(epoch, step, lr, time.perf_counter() - started)
            for unit in units:
                row.update(family.log_values(unit))
            row["images_per_s"] *= world  # every rank saw as many real images as this one
            if loss_log is not None:
                loss_log.append(row)
            board.scalars(step, "gan_epoch", **{k: v for k, v in row.items() if k not in KEYS})
            bar.set_postfix(W=f"{row['wasserstein']:.3f}", refresh=False)
            done = epoch == g.epochs or epoch == stop_after
            if (epoch % g.grid_every == 0 or done) and main:
                grid = fixed_grid(family, units, args, g)
                canvas = save_image_grid(out_dir / "grids" / f"epoch_{epoch:04d}.png", grid)
                board.image("gan/samples", canvas, step)
            if epoch % g.ckpt_every == 0 or done:
                extra = {"epoch": epoch, "step": step, "nan_skips": guard.skips}
                if world > 1:  # a collective: every rank hands over its generator state
                    extra["rank_rngs"] = gather_objects(rng.get_state())
                if main:
                    save_checkpoint(ckpt_path, family, units, rng, **info, **extra)
                guard.good_epoch = epoch
            if epoch == stop_after:
                break
    log.info("GAN at epoch %d of %d: %s", epoch, g.epochs, ckpt_path)
    return ckpt_path


def _no_batch(*_: object) -> None:
    raise RuntimeError("train_epoch sets the batch sources")


def train_epoch(
    family: GeneratorFamily,
    unit: Unit,
    x: torch.Tensor,
    y: torch.Tensor,
    ctx: Step,
    step: int,
    board: Board | None = None,
    conditional: bool = False,
) -> int:
    """One pass over the unit's rows; returns the updated global step count.

    The family's train_step draws real batches in order (wrapping around within the epoch) and
    fake labels at the data's class frequencies. Under torchrun every rank takes its shard of
    rank 0's row order and batch_size / N rows per batch (check_shardable made both divide
    evenly, so every rank takes the same steps). `board` gets the latest losses every step;
    `conditional`: the nets take labels (gan.mode=conditional).
    """
    g, rng, info = ctx.g, ctx.rng, dist_info()
    order = torch.randperm(len(unit.rows), generator=rng, device=rng.device)
    rows = unit.rows[broadcast_from_main(order)]
    if info.world > 1:
        rows = rows[: len(rows) - len(rows) % info.world][info.rank :: info.world]
    batch = min(g.batch_size // info.world, len(rows))
    n_batches = len(rows) // batch
    taken = 0

    def real_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        nonlocal taken
        b = taken % n_batches
        taken += 1
        idx = rows[b * batch : (b + 1) * batch]
        real = as_input(from_uint8(x[idx]), ctx.fast)  # (B, C, H, W) in [-1, 1]
        return real, (y[idx] if conditional else None)

    def fake_labels(n: int) -> torch.Tensor | None:
        pick = torch.randint(len(rows), (n,), generator=rng, device=rng.device)
        return y[rows[pick]] if conditional else None

    per_step = family.real_batches_per_step(g)
    step_ctx = Step(g, real_batch, fake_labels, ctx.policy, rng, ctx.stats, ctx.guard, ctx.fast)
    for _ in range(max(1, n_batches // per_step)):
        step += 1
        ctx.guard.step = step
        family.train_step(unit, step_ctx)
        for name, ema in unit.ema.items():
            ema_update(ema, unit.nets[name], g.ema_decay)
        if board is not None:
            board.scalars(step, "gan", **ctx.stats.last)
    return step


# ---------------------------------------------------------------------------------------------
# helpers outside the loop


def resume(
    path: Path, units: list[Unit], rng: torch.Generator, args: dict, cfg: Config, data: str
) -> tuple[int, int, int]:
    """Load a compatible checkpoint into units and rng: (epoch, step, nan skips); zeros if none."""
    if not path.is_file():
        return 0, 0, 0
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path, args, cfg, data)
    restore_units(ckpt, path, units)
    restore_rng(ckpt["rng"], rng)
    info = dist_info()
    if info.rank > 0:  # each rank continues its own stream; another job size reseeds ranks > 0
        states = ckpt.get("rank_rngs", [])
        if len(states) == info.world:
            rng.set_state(states[info.rank])
        else:
            rng.manual_seed(cfg.gan.seed + 1 + RANK_SEED_STRIDE * info.rank + ckpt["epoch"])
    log.info("resuming %s at epoch %d of %d", path, ckpt["epoch"], cfg.gan.epochs)
    return ckpt["epoch"], ckpt["step"], ckpt["nan_skips"]


def check_shardable(labels: torch.Tensor, g: GanConfig, world: int) -> None:
    """N processes need gan.batch_size divisible by N and at least N rows per GAN unit."""
    if world == 1:
        return
    if g.batch_size % world:
        raise InputError(
            f"gan.batch_size {g.batch_size} does not split over {world} processes; use a "
            f"multiple of {world} (it is the global batch)"
        )
    counts = torch.bincount(labels).tolist() if g.mode == "per_class" else [len(labels)]
    if min(counts) < world:
        raise InputError(
            f"{world} processes need at least {world} training images per GAN (counts {counts}); "
            "use fewer processes"
        )


def training_tensors(
    data: ImageSet, g: GanConfig, where: str = "the GAN training data"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The train split (or its stratified gan.subset) as uint8 (N, H, W, C) and int64 (N,)."""
    images = torch.from_numpy(np.ascontiguousarray(data.images["train"]))
    labels = torch.from_numpy(data.labels["train"].astype(np.int64))
    if g.subset and g.subset < len(labels):
        keep = stratified_subset(labels, g.subset, make_generator(g.seed))
        images, labels = images[keep], labels[keep]
    counts = torch.bincount(labels, minlength=data.num_classes).tolist()
    if g.mode == "per_class" and min(counts) == 0:
        raise InputError(
            f"{where}: gan.mode=per_class needs images of every class; train counts {counts}. "
            "Use gan.mode=conditional or a larger gan.subset"
        )
    return images, labels


def stratified_subset(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """About n row indices (sorted) with each class in proportion, at least one per class."""
    order = torch.randperm(len(labels), generator=generator)
    keep = []
    for c in torch.unique(labels):
        rows = order[labels[order] == c]
        keep.append(rows[: max(1, round(n * len(rows) / len(labels)))])
    return torch.sort(torch.cat(keep)).values


@torch.no_grad()
def fixed_grid(family: GeneratorFamily, units: list[Unit], args: dict, g: GanConfig) -> np.ndarray:
    """Samples from fixed noise: (classes, 8, ...) with one noise per column, or 8 x 8
    unlabelled."""
    labelled = args["mode"] != "unconditional"
    args = {**args, **family.sampling_args(g)}
    rows = args["num_classes"] if labelled else GRID_COLS
    z = family.noise(rows * GRID_COLS, args, make_generator(g.seed + 2))
    if labelled:
        z = z[:GRID_COLS].repeat(rows, *([1] * (z.dim() - 1)))  # the same noise in every row
    labels = torch.arange(rows).repeat_interleave(GRID_COLS)
    out = []
    for c in range(rows):
        unit = units[c] if args["mode"] == "per_class" else units[0]
        sl = slice(c * GRID_COLS, (c + 1) * GRID_COLS)
        gen = unit.sampler
        device = next(gen.parameters()).device
        lab = labels[sl].to(device) if args["mode"] == "conditional" else None
        was_training = gen.training
        gen.eval()
        out.append(to_uint8(family.generate(gen, z[sl].to(device), lab, args)))
        gen.train(was_training)
    return np.stack(out)  # (rows, GRID_COLS, H, W, C)
