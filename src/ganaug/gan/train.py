"""GAN training loop (PAPER.md "GAN training": batch 8, lr 1e-4 for 800 epochs then 5e-5 for 600,
train split only).

An epoch is one pass over the (classically augmented) train images: every critic step takes the
next real batch, every `n_critic` critic steps are followed by one generator step (the WGAN
reference loop), so an epoch has N / (batch_size * n_critic) generator steps. `per_class` runs one
such epoch per class GAN. The learning rate is a function of the epoch (gan.lr up to epochs_lr1,
then gan.lr2), so there is no scheduler state to save.

Output directory: checkpoints/last.pt (every gan.ckpt_every epochs and at the end; rerunning on
the directory resumes), log.csv, grids/epoch_NNNN.png (fixed z; rows = classes when the GAN has
labels), reals.png. Randomness: one explicit generator (seeded gan.seed + 1) drives batching,
latents, interpolation weights and DiffAugment; an interrupted run resumed from its checkpoint
ends bitwise identical (on CPU) to an uninterrupted one.

Fast paths (runtime.*, CUDA by default): bf16 autocast of the generator and critic forwards, with
the gradient penalty's critic pass and every loss in float32; channels_last nets and real batches;
fused Adam / multi-tensor RMSprop; `runtime.compile` compiles the generator, and the critic only
with loss wgan (torch.compile has no double backward). No DDP wrapper: see scale-out below.

Scale-out (StyleGAN3's loop instead of DDP): under `torchrun --nproc_per_node=N` rank 0's
parameters are broadcast at the start, and after every backward the gradients of the net being
stepped (critic, then generator) are averaged over the ranks before its optimiser step, so every
rank holds the same weights. gan.batch_size stays the global batch: each epoch's row order is
rank 0's, each rank takes the shard order[rank::N] and batches of batch_size / N. Rank r draws its
latents, fake labels and DiffAugment from its own generator, seeded gan.seed + 1 + r * 1000003
(rank 0 keeps a one-process run's seed). Batch-norm running statistics stay per rank; rank 0 alone
writes log.csv (its own losses; images_per_s counts all ranks), grids and checkpoints, which also
hold every rank's generator state, so a resumed N-process run continues every rank's stream.
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
from ganaug.gan import losses
from ganaug.gan.diffaug import diff_augment, parse_policy
from ganaug.gan.monitor import LOG_COLUMNS, EpochStats, LossLog, NanGuard, TrainingDiverged
from ganaug.gan.nets import from_uint8, sample_z, to_uint8
from ganaug.gan.state import (
    GanUnit,
    build_units,
    check_resumable,
    data_fingerprint,
    ema_update,
    load_checkpoint,
    model_args,
    restore_rng,
    restore_units,
    save_checkpoint,
)
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    all_reduce_mean_grads,
    as_input,
    autocast,
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
    """Train (or resume) the GAN on data's train split; returns out_dir/checkpoints/last.pt.

    `stop_after` ends the run after that epoch, with a checkpoint, as an interruption would.
    `config_file` receives the resolved config once the data and any checkpoint checked out, so a
    refused run (bad input, another config's checkpoint) writes nothing.
    """
    g, out_dir, where = cfg.gan, Path(out_dir), source or "the GAN training data"
    require_train_only(data, where, "GAN training")
    device = torch.device(device) if device is not None else pick_device(cfg.runtime.device)
    device, world = init_distributed(device), dist_info().world  # torchrun: this rank's device
    images, labels = training_tensors(data, g, where)
    check_shardable(labels, g, world)
    args = model_args(tuple(images.shape[1:]), data.num_classes, g)
    fingerprint = data_fingerprint(images, labels)
    fast = fast_paths(cfg.runtime, device)
    units = build_units(args, g, labels, device, fast)
    rng = make_generator(g.seed + 1 + RANK_SEED_STRIDE * dist_info().rank, device)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    epoch, step, skips = resume(ckpt_path, units, rng, args, cfg, fingerprint)
    if epoch >= g.epochs:
        return ckpt_path
    log.info("GAN on %s; fast paths: %s", device, fast.describe())
    for unit in units:  # every rank starts from rank 0's weights
        for net in (unit.generator, unit.critic, unit.ema):
            if net is not None:
                broadcast_params(net)
    main = is_main()  # rank 0 (or the only process) writes every file
    if config_file is not None and main:
        save_config(cfg, config_file)
    if main:
        save_image_grid(out_dir / "reals.png", real_rows(images, labels, data.num_classes))
    loss_log = LossLog(out_dir / "log.csv", keep_through=epoch) if main else None
    guard = NanGuard(g, ckpt_path, epoch if ckpt_path.is_file() else None, skips)
    x, y = images.to(device), labels.to(device)  # uint8 (N, H, W, C), int64 (N,)
    policy = parse_policy(g.diffaug)
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
                for group in [*unit.opt_g.param_groups, *unit.opt_d.param_groups]:
                    group["lr"] = lr
                step = train_epoch(unit, x, y, g, policy, rng, stats, guard, step, fast, board)

            # maintenance: log, grid, checkpoint
            row = stats.row(epoch, step, lr, time.perf_counter() - started)
            row["images_per_s"] *= world  # every rank saw as many real images as this one
            if loss_log is not None:
                loss_log.append(row)
            board.scalars(step, "gan_epoch", **{k: row[k] for k in LOG_COLUMNS[2:]})
            bar.set_postfix(W=f"{row['wasserstein']:.3f}", refresh=False)
            done = epoch == g.epochs or epoch == stop_after
            if (epoch % g.grid_every == 0 or done) and main:
                grid = fixed_grid(units, args, g)
                canvas = save_image_grid(out_dir / "grids" / f"epoch_{epoch:04d}.png", grid)
                board.image("gan/samples", canvas, step)
            if epoch % g.ckpt_every == 0 or done:
                extra = {"epoch": epoch, "step": step, "nan_skips": guard.skips}
                if world > 1:  # a collective: every rank hands over its generator state
                    extra["rank_rngs"] = gather_objects(rng.get_state())
                if main:
                    save_checkpoint(ckpt_path, units, rng, **info, **extra)
                guard.good_epoch = epoch
            if epoch == stop_after:
                break
    log.info("GAN at epoch %d of %d: %s", epoch, g.epochs, ckpt_path)
    return ckpt_path


def train_epoch(
    unit: GanUnit,
    x: torch.Tensor,
    y: torch.Tensor,
    g: GanConfig,
    policy: tuple[str, ...],
    rng: torch.Generator,
    stats: EpochStats,
    guard: NanGuard,
    step: int,
    fast: FastPaths = PLAIN,
    board: Board | None = None,
) -> int:
    """One pass over the unit's rows; returns the updated global generator-step count.

    `board` gets the latest critic and generator losses after every generator step.

    Under torchrun every rank takes its shard of rank 0's row order and batch_size / N rows per
    batch (check_shardable made both divide evenly, so every rank takes the same steps).
    """
    info = dist_info()
    order = torch.randperm(len(unit.rows), generator=rng, device=rng.device)
    rows = unit.rows[broadcast_from_main(order)]
    if info.world > 1:
        rows = rows[: len(rows) - len(rows) % info.world][info.rank :: info.world]
    batch = min(g.batch_size // info.world, len(rows))
    n_batches = len(rows) // batch
    conditional = unit.generator.embed is not None
    for r in range(max(1, n_batches // g.n_critic)):
        # critic steps: each takes the next real batch
        for k in range(g.n_critic):
            b = (r * g.n_critic + k) % n_batches
            idx = rows[b * batch : (b + 1) * batch]
            real = as_input(from_uint8(x[idx]), fast)  # (B, C, H, W) in [-1, 1]
            labels = y[idx] if conditional else None
            critic_step(unit, real, labels, g, policy, rng, stats, guard, fast)

        # generator step: fake labels follow the data's class frequencies
        pick = torch.randint(len(rows), (batch,), generator=rng, device=rng.device)
        step += 1
        guard.step = step
        labels = y[rows[pick]] if conditional else None
        generator_step(unit, batch, labels, g, policy, rng, stats, guard, fast)
        if unit.ema is not None:
            ema_update(unit.ema, unit.generator, g.ema_decay)
        if board is not None:
            board.scalars(step, "gan", **stats.last)
    return step


def critic_step(
    unit: GanUnit,
    real: torch.Tensor,
    labels: torch.Tensor | None,
    g: GanConfig,
    policy: tuple[str, ...],
    rng: torch.Generator,
    stats: EpochStats,
    guard: NanGuard,
    fast: FastPaths = PLAIN,
) -> None:
    critic, device = unit.critic, real.device
    with torch.no_grad(), autocast(device, fast.amp):
        fake = unit.generator(sample_z(len(real), g.z_dim, g.z_dist, rng), labels).float()
    real_in, fake_in = diff_augment(real, policy, rng), diff_augment(fake, policy, rng)
    with autocast(device, fast.amp):
        real_scores, fake_scores = critic(real_in, labels), critic(fake_in, labels)
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    loss = losses.critic_loss(real_scores, fake_scores)
    penalty = torch.zeros((), device=device)
    if g.loss == "wgan-gp":  # in float32: the double backward is where bf16 would hurt
        alpha = torch.rand(len(real), 1, 1, 1, generator=rng, device=device)
        penalty = losses.gradient_penalty(lambda v: critic(v, labels), real_in, fake_in, alpha)
        loss = loss + g.gp_lambda * penalty
    unit.opt_d.zero_grad(set_to_none=True)
    if guard.finite(loss, "critic"):
        loss.backward()
        all_reduce_mean_grads(critic)  # torchrun: the ranks' mean gradient; no-op in one process
        unit.opt_d.step()
        w = losses.wasserstein_estimate(real_scores, fake_scores)
        stats.add(critic_loss=loss.item(), wasserstein=w.item(), gp=penalty.item())
        stats.images += len(real)
    if g.loss == "wgan":
        losses.clip_weights_(critic.parameters(), g.clip)


def generator_step(
    unit: GanUnit,
    batch: int,
    labels: torch.Tensor | None,
    g: GanConfig,
    policy: tuple[str, ...],
    rng: torch.Generator,
    stats: EpochStats,
    guard: NanGuard,
    fast: FastPaths = PLAIN,
) -> None:
    unit.critic.requires_grad_(False)  # gradients flow through the critic, not into it
    device = rng.device  # the training generator lives on the training device
    with autocast(device, fast.amp):
        fake = unit.generator(sample_z(batch, g.z_dim, g.z_dist, rng), labels).float()
    fake = diff_augment(fake, policy, rng)
    with autocast(device, fast.amp):
        scores = unit.critic(fake, labels)
    loss = losses.generator_loss(scores.float())
    unit.opt_g.zero_grad(set_to_none=True)
    if guard.finite(loss, "generator"):
        loss.backward()
        all_reduce_mean_grads(unit.generator)
        unit.opt_g.step()
        stats.add(gen_loss=loss.item())
    unit.critic.requires_grad_(True)


# ---------------------------------------------------------------------------------------------
# helpers outside the loop


def resume(
    path: Path, units: list[GanUnit], rng: torch.Generator, args: dict, cfg: Config, data: str
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


def real_rows(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """(classes, GRID_COLS, H, W, C): the first training images of each class, black padding."""
    grid = np.zeros((num_classes, GRID_COLS, *images.shape[1:]), dtype=np.uint8)
    for c in range(num_classes):
        chosen = images[labels == c][:GRID_COLS].numpy()
        grid[c, : len(chosen)] = chosen
    return grid


@torch.no_grad()
def fixed_grid(units: list[GanUnit], args: dict, g: GanConfig) -> np.ndarray:
    """Samples from fixed latents: (classes, 8, ...) with one z per column, or 8 x 8 unlabelled."""
    rows = args["num_classes"] if args["mode"] != "unconditional" else GRID_COLS
    z = sample_z(rows * GRID_COLS, g.z_dim, g.z_dist, make_generator(g.seed + 2))
    if args["mode"] != "unconditional":
        z = z[:GRID_COLS].repeat(rows, 1)  # the same z in every class row
    labels = torch.arange(rows).repeat_interleave(GRID_COLS)
    out = []
    for c in range(rows):
        unit = units[c] if args["mode"] == "per_class" else units[0]
        sl = slice(c * GRID_COLS, (c + 1) * GRID_COLS)
        device = next(unit.generator.parameters()).device
        lab = labels[sl].to(device) if args["mode"] == "conditional" else None
        gen = unit.sampler
        was_training = gen.training
        gen.eval()
        out.append(to_uint8(gen(z[sl].to(device), lab)))
        gen.train(was_training)
    return np.stack(out)  # (rows, GRID_COLS, H, W, C)
