"""The config sections: one frozen dataclass per pipeline stage, each validated on construction.

Every number of the paper (PAPER.md) is a field here; the profiles in `profiles/*.yaml` set them.
A value outside the allowed set raises `InputError` naming the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ganaug import InputError


@dataclass(frozen=True)
class DataConfig:
    spec: str = "retinamnist"  # MedMNIST flag, contract .npz path, or image folder
    size: int = 64  # output side in pixels (bicubic resize); paper: 64
    channels: int = 0  # 0 keeps the source channels; 1 or 3 converts
    val_fraction: float = 0.1  # image folders without split dirs: share of each class held for val
    test_fraction: float = 0.2  # image folders without split dirs: share held for test
    split_seed: int = 0  # seed of the stratified split of an unsplit image folder
    medmnist_root: str = ""  # MedMNIST cache dir; "" = $MEDMNIST_ROOT or ~/.medmnist
    download: bool = True  # download a missing MedMNIST file through the medmnist package

    def __post_init__(self) -> None:
        _check(self.size >= 8, "data.size", self.size, "an integer >= 8 (paper: 64)")
        _check(self.channels in (0, 1, 3), "data.channels", self.channels, "0, 1 or 3")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"data.{name}", value, "a fraction in [0, 1)")
        _check(
            self.val_fraction + self.test_fraction < 1.0,
            "data.val_fraction + data.test_fraction",
            self.val_fraction + self.test_fraction,
            "a sum below 1",
        )
        _check_seeds(self, "data", "split_seed")


@dataclass(frozen=True)
class AugmentConfig:
    n_vflip: int = 1  # copies flipped vertically (p = 1) per train image; paper: 1
    n_hflip: int = 1  # copies flipped horizontally with probability hflip_p; paper: 1
    hflip_p: float = 0.1  # flip probability of the horizontal-flip copies; paper: 0.1
    n_color: int = 1  # colour-jitter copies per train image; paper: 1
    color_low: float = 0.7  # lower bound of brightness/contrast/saturation factors; paper: 0.7
    color_high: float = 0.9  # upper bound of those factors; paper: 0.9
    seed: int = 0  # seed of the augmentation generator
    preview: bool = True  # write a preview grid PNG (original vs its copies) beside the output

    def __post_init__(self) -> None:
        for name in ("n_vflip", "n_hflip", "n_color"):
            _check(getattr(self, name) >= 0, f"augment.{name}", getattr(self, name), ">= 0")
        _check(0.0 <= self.hflip_p <= 1.0, "augment.hflip_p", self.hflip_p, "a probability")
        _check_seeds(self, "augment", "seed")
        _check(
            0.0 < self.color_low <= self.color_high,
            "augment.color_low/color_high",
            (self.color_low, self.color_high),
            "0 < color_low <= color_high",
        )


@dataclass(frozen=True)
class GanConfig:
    family: str = "wgan"  # generator family (ganaug.generators.FAMILIES); the paper's: wgan
    mode: Literal["unconditional", "conditional", "per_class"] = "unconditional"  # label strategy
    loss: Literal["wgan", "wgan-gp"] = "wgan"  # weight clipping (paper's WGAN) or gradient penalty
    z_dim: int = 100  # latent size; paper: 100
    z_dist: Literal["uniform", "normal"] = "uniform"  # uniform[-1, 1] or standard normal
    width: int = 1024  # channels of the 4x4 generator base / last critic conv; paper: 1024
    batch_size: int = 8  # paper: 8
    lr: float = 1e-4  # learning rate of the first phase; paper: 1e-4
    lr2: float = 5e-5  # learning rate of the second phase; paper: 5e-5
    epochs_lr1: int = 800  # epochs at lr; paper: 800
    epochs_lr2: int = 600  # epochs at lr2; paper: 600
    n_critic: int = 5  # critic steps per generator step; WGAN / WGAN-GP recipe: 5
    clip: float = 0.01  # critic weight clip for loss=wgan; WGAN recipe: 0.01
    gp_lambda: float = 10.0  # gradient-penalty weight for loss=wgan-gp; WGAN-GP recipe: 10
    adam_beta1: float = 0.5  # Adam beta1 for wgan-gp (0.5 or 0.0)
    adam_beta2: float = 0.9  # Adam beta2 for wgan-gp
    critic_norm: Literal["auto", "batch", "none"] = "auto"  # critic batch norm; auto = wgan only
    diffaug: str = ""  # DiffAugment policy: comma list of color, translation, cutout; "" = off
    ema_decay: float = 0.0  # generator EMA decay used for sampling; 0 = off
    subset: int = 0  # train on at most N images (a stratified subset); 0 = all (smoke tests)
    grid_every: int = 50  # epochs between fixed-z sample grids
    ckpt_every: int = 10  # epochs between checkpoints (and at the end)
    nan_policy: Literal["stop", "skip"] = "stop"  # on a non-finite loss: stop, or skip the step
    max_nan_skips: int = 10  # skips allowed with nan_policy=skip before stopping
    seed: int = 0  # training seed
    n_samples: int = 2000  # images generated for selection; paper: about 2000
    sample_seed: int = 0  # first per-image seed of the generated samples
    # stylegan2 family (StyleGAN2-ADA); the wgan family ignores these
    w_dim: int = 0  # style (w) size; 0 = z_dim
    mapping_layers: int = 2  # mapping MLP depth (StyleGAN2: 8; 2 suits a few thousand images)
    r1_gamma: float = 0.1  # R1 penalty weight on real images (StyleGAN2-ADA, 64 px: ~0.05-0.5)
    r1_every: int = 16  # lazy R1: every N discriminator steps, scaled by N
    ada_target: float = 0.6  # ADA's r_t target; 0 = a fixed augmentation probability ada_p
    ada_p: float = 0.0  # the augmentation probability at the start (fixed when ada_target is 0)
    ada_interval: int = 4  # discriminator steps between p adjustments
    ada_kimg: int = 100  # thousands of images for p to move by 1 (StyleGAN2-ADA: 500)
    # diffusion family (diffusers UNet2DModel + DDPM/DDIM); gan.width is its first level's channels
    unet_mult: str = "1,2,2,2"  # channel multiplier per UNet level; each level halves the size
    unet_layers: int = 1  # ResNet blocks per level (diffusers' default: 2)
    attention_res: str = "16"  # comma list of resolutions (px) with self-attention; "" = none
    timesteps: int = 1000  # diffusion steps of the noise schedule (DDPM: 1000)
    noise_schedule: Literal["linear", "cosine"] = "cosine"  # DDPM's linear or the cosine schedule
    prediction: Literal["epsilon", "v"] = "v"  # the net predicts v (Salimans & Ho) or the noise
    label_dropout: float = 0.1  # conditional: labels dropped in training (classifier-free guidance)
    sampler: Literal["ddim", "ddpm"] = "ddim"  # sampler; read at sampling time
    sample_steps: int = 50  # sampler steps; read at sampling time
    guidance: float = 0.0  # classifier-free guidance scale w at sampling; 0 = unguided
    eta: float = 0.0  # DDIM's eta: 0 = deterministic, 1 = as stochastic as DDPM

    def __post_init__(self) -> None:
        _check(self.width >= 8 and self.width % 8 == 0, "gan.width", self.width, "a multiple of 8")
        for name in ("mapping_layers", "r1_every", "ada_interval", "ada_kimg", "unet_layers"):
            _check(getattr(self, name) >= 1, f"gan.{name}", getattr(self, name), ">= 1")
        _check(self.w_dim >= 0, "gan.w_dim", self.w_dim, ">= 0 (0 = z_dim)")
        _check(
            _int_list(self.unet_mult, minimum=1, allow_empty=False),
            "gan.unet_mult",
            self.unet_mult,
            "a comma list of positive integers, e.g. 1,2,2,2",
        )
        _check(
            _int_list(self.attention_res, minimum=1, allow_empty=True),
            "gan.attention_res",
            self.attention_res,
            "a comma list of resolutions in px, e.g. 16 or 16,8 (empty: no attention)",
        )
        for name in ("timesteps", "sample_steps"):
            _check(getattr(self, name) >= 1, f"gan.{name}", getattr(self, name), ">= 1")
        _check(0.0 <= self.label_dropout < 1.0, "gan.label_dropout", self.label_dropout, "[0, 1)")
        _check(self.guidance >= 0, "gan.guidance", self.guidance, ">= 0 (0 = unguided)")
        _check(0.0 <= self.eta <= 1.0, "gan.eta", self.eta, "in [0, 1]")
        _check(self.r1_gamma >= 0, "gan.r1_gamma", self.r1_gamma, ">= 0")
        _check(0.0 <= self.ada_target < 1.0, "gan.ada_target", self.ada_target, "[0, 1)")
        _check(0.0 <= self.ada_p <= 1.0, "gan.ada_p", self.ada_p, "a probability")
        for name in ("z_dim", "batch_size", "n_critic", "ckpt_every", "grid_every", "n_samples"):
            _check(getattr(self, name) >= 1, f"gan.{name}", getattr(self, name), ">= 1")
        for name in ("epochs_lr1", "epochs_lr2", "subset", "max_nan_skips"):
            _check(getattr(self, name) >= 0, f"gan.{name}", getattr(self, name), ">= 0")
        _check(
            self.epochs >= 1,
            "gan.epochs_lr1 + gan.epochs_lr2",
            self.epochs,
            "at least 1 epoch in all (paper: 800 + 600)",
        )
        _check_seeds(self, "gan", "seed", "sample_seed")
        _check(self.lr > 0 and self.lr2 > 0, "gan.lr/lr2", (self.lr, self.lr2), "> 0")
        _check(0.0 <= self.ema_decay < 1.0, "gan.ema_decay", self.ema_decay, "in [0, 1)")
        _check(
            not (self.loss == "wgan-gp" and self.critic_norm == "batch"),
            "gan.critic_norm",
            self.critic_norm,
            "auto or none with gan.loss=wgan-gp (batch norm breaks the per-sample penalty)",
        )
        for name in ("adam_beta1", "adam_beta2"):
            _check(0.0 <= getattr(self, name) < 1.0, f"gan.{name}", getattr(self, name), "[0, 1)")
        _check(self.clip > 0, "gan.clip", self.clip, "> 0 (WGAN recipe: 0.01)")
        _check(self.gp_lambda >= 0, "gan.gp_lambda", self.gp_lambda, ">= 0 (WGAN-GP recipe: 10)")
        allowed = {"color", "translation", "cutout"}
        parts = [p.strip() for p in self.diffaug.split(",") if p.strip()]
        _check(
            all(p in allowed for p in parts),
            "gan.diffaug",
            self.diffaug,
            "a comma list of color, translation, cutout (or empty)",
        )

    @property
    def epochs(self) -> int:
        return self.epochs_lr1 + self.epochs_lr2


@dataclass(frozen=True)
class SelectConfig:
    k: int = 443  # synthetic images kept; paper: 443 of about 2000
    quota: str = "paper"  # balanced | paper | proportional | inverse | explicit list "101,96,..."
    min_nn_distance: float = (
        0.02  # drop samples closer than this (RMS pixel difference, 0..1) to a train image
    )
    labeller: str = "resnet18"  # classifier (registry name) trained on the real train split
    labeller_epochs: int = 10  # epochs of labeller training
    labeller_batch_size: int = 64  # batch of labeller training
    labeller_lr: float = 1e-3  # learning rate of labeller training
    min_confidence: float = 0.0  # drop samples the labeller gives less than this for their label
    critic_weight: float = 1.0  # weight of the critic-score rank in the combined rank
    confidence_weight: float = 1.0  # weight of the labeller-confidence rank in the combined rank
    # weight of the k-NN realism rank (labeller features vs the real train split); it is used
    # only for a generator family without a realism score of its own (diffusion)
    knn_realism_weight: float = 1.0
    require_agreement: bool = False  # labelled samples: drop those the labeller puts elsewhere
    kid_subset_size: int = 100  # KID subset size (capped at the smaller set's size)
    kid_subsets: int = 50  # KID subsets averaged
    prdc_k: int = 5  # nearest-neighbour k of precision/recall/density/coverage
    inception_weights: str = ""  # local Inception weights file for an Inception FID; "" = none
    seed: int = 0  # seed of the labeller training and KID subsets

    def __post_init__(self) -> None:
        _check(self.k >= 1, "select.k", self.k, ">= 1")
        named = ("balanced", "paper", "proportional", "inverse")
        if self.quota not in named:
            try:
                counts = [int(p) for p in self.quota.split(",")]
            except ValueError:
                counts = []
            _check(
                bool(counts) and all(c >= 0 for c in counts),
                "select.quota",
                self.quota,
                "balanced, paper, proportional, inverse or a comma list of counts",
            )
        _check(self.min_nn_distance >= 0, "select.min_nn_distance", self.min_nn_distance, ">= 0")
        _check(0 <= self.min_confidence <= 1, "select.min_confidence", self.min_confidence, "[0,1]")
        _check(self.kid_subset_size >= 2, "select.kid_subset_size", self.kid_subset_size, ">= 2")
        _check(self.prdc_k >= 1, "select.prdc_k", self.prdc_k, ">= 1")
        _check(self.kid_subsets >= 1, "select.kid_subsets", self.kid_subsets, ">= 1")
        for name in ("labeller_epochs", "labeller_batch_size"):
            _check(getattr(self, name) >= 1, f"select.{name}", getattr(self, name), ">= 1")
        _check(self.labeller_lr > 0, "select.labeller_lr", self.labeller_lr, "> 0")
        _check_seeds(self, "select", "seed")
        weights = (self.critic_weight, self.confidence_weight, self.knn_realism_weight)
        _check(
            min(weights) >= 0 and sum(weights) > 0,
            "select.critic_weight/confidence_weight/knn_realism_weight",
            weights,
            "each >= 0, at least one > 0",
        )


@dataclass(frozen=True)
class FidelityConfig:
    extractor: str = "densenet121"  # registry name of the feature network; not the labeller's
    epochs: int = 5  # epochs of extractor training on the real train split
    batch_size: int = 64  # batch of extractor training (>= 2: batch norm)
    lr: float = 1e-3  # Adam learning rate of extractor training
    seed: int = 12345  # seed of extractor init and shuffling; apart from every classifier's
    n: int = 0  # images per compared set; 0 = the smaller of the two sets in each comparison
    kid_subset_size: int = 100  # KID subset size (capped at n)
    kid_subsets: int = 50  # KID subsets averaged
    prdc_k: int = 5  # nearest-neighbour k of precision/recall/density/coverage (capped at n - 1)
    draw_seed: int = 0  # seed of the subsampling to equal n (and of the KID subsets)

    def __post_init__(self) -> None:
        _check(bool(self.extractor), "fidelity.extractor", self.extractor, "a model name")
        _check(self.epochs >= 1, "fidelity.epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 2, "fidelity.batch_size", self.batch_size, ">= 2")
        _check(self.lr > 0, "fidelity.lr", self.lr, "> 0")
        _check(self.n == 0 or self.n >= 2, "fidelity.n", self.n, "0 (the smaller set) or >= 2")
        _check(self.kid_subset_size >= 2, "fidelity.kid_subset_size", self.kid_subset_size, ">= 2")
        _check(self.kid_subsets >= 1, "fidelity.kid_subsets", self.kid_subsets, ">= 1")
        _check(self.prdc_k >= 1, "fidelity.prdc_k", self.prdc_k, ">= 1")
        _check_seeds(self, "fidelity", "seed", "draw_seed")


@dataclass(frozen=True)
class ClassifyConfig:
    model: str = "resnet101"  # registry name: resnet18, resnet50, resnet101, densenet121
    weights: str = ""  # local pretrained weights file (state dict); "" = train from scratch
    lr: float = 1e-4  # Adam learning rate; paper: 1e-4
    batch_size: int = 64  # paper: 64
    epochs: int = 40  # paper: 40
    class_weights: Literal["none", "balanced"] = "none"  # cross-entropy class weights
    weight_decay: float = 0.0  # Adam weight decay
    eval_batch_size: int = 256  # batch of val/test evaluation
    seed: int = 0  # seed of initialisation and shuffling
    # epochs = classify.epochs passes over the training set (the paper's protocol); steps = a
    # fixed number of optimiser steps whatever the set's size
    budget: Literal["epochs", "steps"] = "epochs"
    # optimiser steps with budget=steps; 0 = classify.epochs passes over this training set
    # (`ganaug run` replaces 0 with the step count of the grid's largest regime, so every regime
    # gets the same)
    steps: int = 0
    # evaluations (val + test, checkpoint, curves row) spread evenly over the step budget;
    # 0 = classify.epochs; at most the resolved steps (checked when a fit starts)
    evals: int = 0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "classify.lr", self.lr, "> 0")
        for name in ("batch_size", "epochs", "eval_batch_size"):
            _check(getattr(self, name) >= 1, f"classify.{name}", getattr(self, name), ">= 1")
        _check(self.weight_decay >= 0, "classify.weight_decay", self.weight_decay, ">= 0")
        for name in ("steps", "evals"):
            _check(getattr(self, name) >= 0, f"classify.{name}", getattr(self, name), ">= 0")
        _check_seeds(self, "classify", "seed")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "retinamnist"  # run name: runs/<name>/ when --out is not given
    regimes: tuple[str, ...] = ("none", "classic", "classic+gan")  # rows of Table 1
    models: tuple[str, ...] = ("resnet101", "densenet121")  # columns of Table 1
    seeds: tuple[int, ...] = (0,)  # classifier seeds per cell
    # each seed trains its own GAN, samples and selection (seeded from it), so the comparison's
    # interval covers the generator draw; false = one generator serves every seed (paper recipe)
    generator_per_seed: bool = True
    synthetic_copies: int = 3  # images per selected synthetic one in classic+gan; paper: 3
    executor: Literal["local", "ray"] = "local"  # how grid cells run
    workers: int = 1  # local process-pool size; 1 = sequential
    gpus_per_cell: float = 0.0  # GPU share each Ray task asks for
    retries: int = 2  # Ray task retries on failure
    bootstrap: int = 1000  # bootstrap resamples of the paired comparison

    def __post_init__(self) -> None:
        allowed = {"none", "classic", "classic+gan", "gan", "classic+gan-unselected"}
        allowed.add("synthetic-only")
        bad = [r for r in self.regimes if r not in allowed]
        _check(not bad, "experiment.regimes", ",".join(bad), ", ".join(sorted(allowed)))
        _check(bool(self.regimes), "experiment.regimes", "", "at least one regime")
        _check(bool(self.models), "experiment.models", "", "at least one model")
        _check(bool(self.seeds), "experiment.seeds", "", "at least one seed")
        for name in ("regimes", "models", "seeds"):
            values = getattr(self, name)
            repeated = sorted({v for v in values if values.count(v) > 1})
            _check(not repeated, f"experiment.{name}", repeated, f"distinct {name} (one cell each)")
        _check(min(self.seeds) >= 0, "experiment.seeds", min(self.seeds), "seeds >= 0")
        _check(
            self.synthetic_copies >= 1, "experiment.synthetic_copies", self.synthetic_copies, ">= 1"
        )
        _check(self.workers >= 1, "experiment.workers", self.workers, ">= 1")


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    compile: bool = False  # torch.compile the networks (GAN critic only with loss wgan); any device
    amp: bool = True  # bf16 autocast of forward passes on CUDA (GAN gradient penalty stays fp32)
    channels_last: bool = True  # NHWC memory format for convolutions on CUDA
    fused: bool = True  # fused Adam / multi-tensor RMSprop kernels on CUDA
    tensorboard: bool = True  # event files in tb/ when the tensorboard package is installed

    def __post_init__(self) -> None:
        ok = self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        _check(ok, "runtime.device", self.device, "auto, cpu, cuda, cuda:N or mps")
        _check(self.threads >= 0, "runtime.threads", self.threads, ">= 0")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise InputError(f"config key {key}: bad value {value!r}; allowed: {allowed}")


def _check_seeds(section: Any, name: str, *fields: str) -> None:
    for seed in fields:
        value = getattr(section, seed)
        _check(value >= 0, f"{name}.{seed}", value, "a seed >= 0")


def _int_list(text: str, *, minimum: int, allow_empty: bool) -> bool:
    """Whether text is a comma list of integers >= minimum (or empty, when allowed)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return allow_empty
    return all(p.isdigit() and int(p) >= minimum for p in parts)
