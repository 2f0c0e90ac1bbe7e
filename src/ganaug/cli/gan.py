"""`ganaug gan train` and `ganaug gan sample`: any generator family (gan.family)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganaug.cli.app import (
    ForceOpt,
    Shared,
    _check_at_least,
    _check_out_dir,
    _check_out_file,
    app,
    shared_options,
)
from ganaug.runtime import seed_everything

gan_app = typer.Typer(
    help="Train the GAN on a train split, and sample images from its checkpoint.",
    no_args_is_help=True,
)
app.add_typer(gan_app, name="gan")


@gan_app.command("train")
@shared_options
def gan_train_cmd(
    shared: Shared,
    data: Annotated[Path, typer.Option("--data", help="Contract npz, e.g. classic.npz.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (rerun to resume).")],
) -> None:
    """Train (or resume) the GAN on the train split of --data (train-derived images only).

    Writes DIR/config.yaml, checkpoints/last.pt, log.csv, grids/epoch_NNNN.png, reals.png.
    Example: ganaug gan train --data classic.npz --out runs/gan --set gan.epochs_lr1=2
    """
    from ganaug.data import read_npz
    from ganaug.generators.loop import train_gan
    from ganaug.runtime import main_process_lock

    cfg = shared.config()
    _check_out_dir(out)
    seed_everything(cfg.gan.seed)
    real = read_npz(data)
    with main_process_lock(out):  # config.yaml is written once data and checkpoint checked out
        checkpoint = train_gan(real, cfg, out, source=str(data), config_file=out / "config.yaml")
    shared.echo(
        f"wrote {checkpoint}\nlog: {out / 'log.csv'}, grids: {out / 'grids'}, "
        f"reals: {out / 'reals.png'}"
    )


@gan_app.command("sample")
@shared_options
def gan_sample_cmd(
    shared: Shared,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="DIR/checkpoints/last.pt.")],
    out: Annotated[Path, typer.Option("--out", help="Output npz, e.g. synthetic_raw.npz.")],
    n: Annotated[int | None, typer.Option("--n", help="Images (default gan.n_samples).")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of image 0 (image i: seed + i).")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Generate images from a GAN checkpoint, one seed per image, plus a contact sheet PNG.

    Example: ganaug gan sample --checkpoint runs/gan/checkpoints/last.pt --n 2000 --out raw.npz
    """
    from ganaug.data import summarize, write_npz
    from ganaug.generators.sample import contact_sheet, sample_images
    from ganaug.runtime import pick_device, save_image_grid

    _check_at_least("--n", n, 1, "the number of images")
    _check_at_least("--seed", seed, 0, "a seed")
    extra = [f"gan.n_samples={n}"] if n is not None else []
    extra += [f"gan.sample_seed={seed}"] if seed is not None else []
    cfg = shared.config(extra)
    _check_out_file(out, force, "synthetic_raw.npz")
    g = cfg.gan
    samples = sample_images(
        checkpoint, g.n_samples, g.sample_seed, device=pick_device(cfg.runtime.device), g=g
    )
    save_image_grid(out.with_suffix(".png"), contact_sheet(samples))
    write_npz(out, samples)  # last: an interrupted command leaves no npz, so a rerun is not refused
    shared.echo(f"wrote {out} and {out.with_suffix('.png')}\n{summarize(samples)}")
