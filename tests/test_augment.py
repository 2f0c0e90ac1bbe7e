import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

import ganaug.augment as augment_module
from conftest import make_imageset
from ganaug.augment import (
    OPS,
    augment_imageset,
    classic_augment,
    color_jitter,
    color_jitter_uint8,
)
from ganaug.config import AugmentConfig, load_config
from ganaug.runtime import make_generator


def _aug(seed=0, n=40, channels=3, **cfg):
    data = make_imageset(n=n, channels=channels)
    images = torch.from_numpy(data.images["train"])
    labels = torch.from_numpy(data.labels["train"])
    return (
        images,
        labels,
        classic_augment(images, labels, AugmentConfig(**cfg), make_generator(seed)),
    )


def test_counts_follow_the_papers_formula():
    images, labels, out = _aug(n=40)
    assert out.images.shape == (160, 8, 8, 3)  # N (1 + 1 + 1 + 1)
    _, _, more = _aug(n=40, n_vflip=2, n_hflip=0, n_color=3)
    assert len(more.images) == 40 * (1 + 2 + 0 + 3)
    assert torch.equal(out.labels, labels.repeat(4))


def test_originals_kept_and_vflip_equals_flipped_original():
    images, _, out = _aug()
    assert torch.equal(out.images[:40], images)
    vflip = out.op == OPS.index("vflip")
    assert torch.equal(out.images[vflip], images.flip(1))  # (N, H, W, C): H is dim 1


def test_hflip_copies_flip_with_probability_point_one():
    images, _, out = _aug(n=2000)
    hf = (out.op == OPS.index("hflip")) | (out.op == OPS.index("hflip-none"))
    flipped = out.op == OPS.index("hflip")
    assert hf.sum() == 2000
    assert 0.07 < flipped.float().sum() / 2000 < 0.13
    src = out.source_index[flipped]
    assert torch.equal(out.images[flipped], images[src].flip(2))
    same = out.op == OPS.index("hflip-none")
    assert torch.equal(out.images[same], images[out.source_index[same]])


def test_color_factors_in_range_and_image_darker():
    images, _, out = _aug(n=200)
    color = out.op == OPS.index("color")
    f = out.color_factors[color]
    assert f.min() >= 0.7 and f.max() <= 0.9
    assert torch.all(out.color_factors[~color] == 1)
    assert out.images[color].float().mean() < images.float().mean()


def test_color_jitter_identity_and_brightness():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(color_jitter(x, torch.ones(2, 3)), x, atol=1e-6)
    half = color_jitter(x, torch.tensor([[0.5, 1.0, 1.0]] * 2))
    assert torch.allclose(half, x * 0.5, atol=1e-6)


def test_same_seed_identical_other_seed_different():
    _, _, a = _aug(seed=3)
    _, _, b = _aug(seed=3)
    _, _, c = _aug(seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.op, b.op)
    assert not torch.equal(a.images, c.images)


def test_grayscale_images_are_supported():
    images, _, out = _aug(channels=1)
    assert out.images.shape == (160, 8, 8, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_augment_imageset_records_provenance(tmp_path, seed):
    data = make_imageset(n=12)
    cfg = load_config("smoke", [f"augment.seed={seed}"])
    out = augment_imageset(data, cfg, source="real.npz", preview=tmp_path / "p.png")
    assert out.splits == ("train",)
    assert out.meta["stage"] == "augment" and out.meta["source_splits"] == {"train": ["train"]}
    idx = out.extras["train_source_index"]
    np.testing.assert_array_equal(out.images["train"][:12], data.images["train"])
    assert idx.shape == (48,) and out.extras["train_op"].shape == (48,)
    assert (tmp_path / "p.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# the fast uint8 path against the straightforward float reference


def _reference_augment(images, labels, cfg, generator):
    """The out-of-place recipe (NCHW blocks, float `color_jitter`, cat): what the fast path is
    checked against, with the same `torch.rand` calls in the same order."""
    n = images.shape[0]
    x = images.permute(0, 3, 1, 2)  # (N, C, H, W)
    blocks, ops, factors = [x], [torch.full((n,), 0, dtype=torch.int8)], [torch.ones(n, 3)]
    for _ in range(cfg.n_vflip):
        blocks.append(x.flip(2))
        ops.append(torch.full((n,), OPS.index("vflip"), dtype=torch.int8))
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_hflip):
        flip = torch.rand(n, generator=generator) < cfg.hflip_p
        blocks.append(torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x))
        ops.append(torch.where(flip, OPS.index("hflip"), OPS.index("hflip-none")).to(torch.int8))
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_color):
        f = torch.rand(n, 3, generator=generator)
        f = cfg.color_low + (cfg.color_high - cfg.color_low) * f
        blocks.append((color_jitter(x.float() / 255.0, f) * 255.0).round().to(torch.uint8))
        ops.append(torch.full((n,), OPS.index("color"), dtype=torch.int8))
        factors.append(f)
    copies = len(blocks)
    images_out = torch.cat(blocks).permute(0, 2, 3, 1)
    return images_out, labels.repeat(copies), torch.cat(ops), torch.cat(factors)


def _assert_same_as_reference(images, cfg, seed):
    labels = torch.arange(len(images)) % 3
    out = classic_augment(images, labels, cfg, make_generator(seed))
    ref_images, ref_labels, ref_ops, ref_factors = _reference_augment(
        images, labels, cfg, make_generator(seed)
    )
    assert out.images.is_contiguous() and out.images.dtype == torch.uint8
    assert torch.equal(out.images, ref_images)  # byte-identical, not just close
    assert torch.equal(out.labels, ref_labels) and torch.equal(out.op, ref_ops)
    assert torch.equal(out.color_factors, ref_factors)


@pytest.mark.parametrize(
    "shape, cfg, seed",
    [
        ((40, 8, 8, 3), {}, 0),
        ((33, 9, 11, 3), {"n_vflip": 2, "n_hflip": 2, "n_color": 3, "hflip_p": 0.5}, 1),
        ((20, 8, 8, 3), {"color_low": 0.2, "color_high": 1.8}, 2),  # clamps active
        ((15, 7, 5, 1), {"n_color": 2}, 3),  # one gray channel: no saturation
        ((1, 8, 8, 3), {}, 4),
    ],
)
def test_fast_path_byte_identical_to_float_reference(shape, cfg, seed):
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    _assert_same_as_reference(images, AugmentConfig(**cfg), seed)


@pytest.mark.parametrize("channels", [3, 1])
def test_in_place_jitter_is_bitwise_the_float_reference(channels):
    # on unrounded floats any change in the order of float operations shows up in many values,
    # where after rounding to uint8 it would touch only a few pixels in millions
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, channels, 32, 32, generator=gen)
    f = 0.5 + torch.rand(16, 3, generator=gen)  # some factors above 1: clamps active
    expected = color_jitter(x, f)
    gray_buf = torch.empty(2, 16, 32, 32)
    augment_module._color_jitter_(x, f, gray_buf[0], gray_buf[1])
    assert torch.equal(x, expected)


def test_fast_path_byte_identical_across_chunks(monkeypatch):
    # chunks of 3-4 images (and one uneven split) instead of one chunk for the whole set
    monkeypatch.setattr(augment_module, "_CHUNK_VALUES", 3 * 8 * 8 * 3)
    images = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (41, 8, 8, 3), np.uint8))
    _assert_same_as_reference(images, AugmentConfig(n_color=2), 5)


def test_fast_path_byte_identical_on_real_images(retina_npz):
    with np.load(retina_npz) as data:
        images = torch.from_numpy(data["train_images"][:300])  # (300, 28, 28, 3)
    _assert_same_as_reference(images, AugmentConfig(), 0)


def test_chunks_cover_all_images_with_at_least_two_each(monkeypatch):
    monkeypatch.setattr(augment_module, "_CHUNK_VALUES", 1000)
    for n in (1, 2, 3, 7, 100, 101):
        sizes = augment_module._chunk_sizes(n, 300)  # 3 images per chunk wanted
        assert sum(sizes) == n and sizes == sorted(sizes, reverse=True)
        assert min(sizes) >= min(n, 2) and max(sizes) - min(sizes) <= 1


def test_color_jitter_uint8_writes_only_its_output():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), np.uint8))
    before = images.clone()
    out = torch.zeros(8, 8, 8, 3, dtype=torch.uint8)
    color_jitter_uint8(images, torch.full((6, 3), 0.8), out[1:7])
    assert torch.equal(images, before)
    assert torch.all(out[0] == 0) and torch.all(out[7] == 0) and out[1:7].any()


def test_color_jitter_matches_torchvision_in_fixed_order():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    f = torch.tensor([[0.7, 0.8, 0.9], [0.9, 0.7, 0.8], [0.75, 0.85, 0.7], [0.5, 1.5, 1.2]])
    expected = []
    for img, (b, c, s) in zip(x, f.tolist(), strict=True):
        img = TF.adjust_brightness(img, b)
        img = TF.adjust_contrast(img, c)
        expected.append(TF.adjust_saturation(img, s))
    # torchvision weighs red 0.2989 where we use Rec. 601's 0.299: differences stay ~1e-5
    torch.testing.assert_close(color_jitter(x, f), torch.stack(expected), atol=1e-4, rtol=0)
