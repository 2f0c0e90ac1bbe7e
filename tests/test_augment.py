import numpy as np
import pytest
import torch

from conftest import make_imageset
from ganaug.augment import OPS, augment_imageset, classic_augment, color_jitter
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
