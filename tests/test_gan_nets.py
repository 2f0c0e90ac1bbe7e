"""Generator and critic shapes, gradients, init; losses and DiffAugment as pure functions."""

import pytest
import torch

from ganaug import InputError
from ganaug.generators.diffaug import diff_augment
from ganaug.generators.family import from_uint8, to_uint8
from ganaug.generators.wgan import losses
from ganaug.generators.wgan.nets import Critic, Generator, base_side, build_pair
from ganaug.runtime import make_generator


def args(width=32, size=64, mode="unconditional", batch_norm=False, channels=3):
    return {
        "mode": mode,
        "z_dim": 100,
        "z_dist": "uniform",
        "width": width,
        "size": size,
        "channels": channels,
        "num_classes": 5,
        "critic_batch_norm": batch_norm,
        "units": 1,
    }


@pytest.mark.parametrize("width, size, batch", [(32, 64, 2), (32, 32, 2), (1024, 64, 1)])
def test_shapes_follow_the_paper(width, size, batch):
    gen, critic = build_pair(args(width, size), make_generator(0))
    assert gen.fc.out_features == width * (size // 16) ** 2  # 4x4 x width for 64 px
    convs = [m for m in gen.convs if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [width // 2, width // 4, width // 8, 3]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    critic_convs = [m for m in critic.convs if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in critic_convs] == [width // 8, width // 4, width // 2, width]
    with torch.no_grad():
        images = gen(torch.rand(batch, 100) * 2 - 1)
        assert images.shape == (batch, 3, size, size)
        assert images.abs().max() <= 1  # tanh
        assert critic(images).shape == (batch,)


def test_bad_size_is_input_error():
    assert base_side(64) == 4 and base_side(32) == 2
    with pytest.raises(InputError, match="multiple of 16"):
        base_side(28)


@pytest.mark.parametrize("mode, batch_norm", [("conditional", False), ("unconditional", True)])
def test_every_parameter_gets_a_gradient(mode, batch_norm):
    gen, critic = build_pair(args(16, 32, mode, batch_norm), make_generator(0))
    labels = torch.tensor([0, 3, 4]) if mode == "conditional" else None
    score = critic(gen(torch.rand(3, 100), labels), labels)
    score.sum().backward()
    for name, p in [*gen.named_parameters(), *critic.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert torch.isfinite(score).all()


def test_conditional_nets_use_the_label():
    gen, critic = build_pair(args(16, 32, "conditional"), make_generator(0))
    gen.eval()
    z = torch.rand(1, 100).repeat(2, 1)
    with torch.no_grad():
        pair = gen(z, torch.tensor([0, 1]))
        assert not torch.equal(pair[0], pair[1])
        scores = critic(pair[:1].repeat(2, 1, 1, 1), torch.tensor([0, 1]))
    assert scores[0] != scores[1]
    with pytest.raises(ValueError, match="labels"):
        gen(z)


def test_initialisation_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    g1, c1 = build_pair(args(16, 32), make_generator(7))
    g2, _ = build_pair(args(16, 32), make_generator(7))
    g3, _ = build_pair(args(16, 32), make_generator(8))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(g1.fc.weight, g2.fc.weight)
    assert not torch.equal(g1.fc.weight, g3.fc.weight)
    assert abs(g1.fc.weight.detach().std().item() - 0.02) < 0.002  # DCGAN N(0, 0.02)
    assert isinstance(g1, Generator) and isinstance(c1, Critic)


def test_pixel_conversion_round_trips():
    images = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    x = from_uint8(images)
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert (to_uint8(x) == images.numpy()).all()


# ---------------------------------------------------------------------------------------------
# losses


def test_gradient_penalty_of_a_linear_critic_is_known():
    # f(x) = <w, x> has gradient w everywhere: penalty = (|w| - 1)^2 for any real, fake, alpha
    w = torch.randn(3, 8, 8)
    w = (w / w.norm() * 3).requires_grad_(True)

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    alpha = torch.rand(4, 1, 1, 1)
    penalty = losses.gradient_penalty(critic, real, fake, alpha)
    assert torch.allclose(penalty, torch.tensor(4.0), atol=1e-5)
    (grad,) = torch.autograd.grad(
        penalty, w
    )  # the penalty trains the critic: d/dw = 2(|w|-1) w/|w|
    assert torch.allclose(grad, 2 * 2 * w.detach() / 3, atol=1e-5)


def test_wasserstein_losses():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert losses.critic_loss(real, fake) == -3.0
    assert losses.wasserstein_estimate(real, fake) == 3.0
    assert losses.generator_loss(fake) == 0.0


def test_clipping_keeps_weights_in_range():
    layer = torch.nn.Linear(10, 10)
    with torch.no_grad():
        layer.weight.mul_(100)
    losses.clip_weights_(layer.parameters(), 0.01)
    assert all(p.abs().max() <= 0.01 for p in layer.parameters())
    assert (layer.weight.abs() == 0.01).any()


# ---------------------------------------------------------------------------------------------
# DiffAugment


def test_diffaug_is_seeded_shape_preserving_and_differentiable():
    x = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    policy = ("color", "translation", "cutout")
    a = diff_augment(x, policy, make_generator(0))
    b = diff_augment(x, policy, make_generator(0))
    c = diff_augment(x, policy, make_generator(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, (), make_generator(0)), x)


def test_translation_is_an_integer_shift_and_cutout_a_square():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16) + 1
    moved = diff_augment(x, ("translation",), make_generator(3))
    shifts = []
    for img, out in zip(x, moved, strict=True):
        found = [
            (dy, dx)
            for dy in range(-2, 3)  # up to 1/8 of 16 px
            for dx in range(-2, 3)
            if torch.equal(_shift(img[0], dy, dx), out[0])
        ]
        assert len(found) == 1
        shifts += found
    assert shifts != [(0, 0), (0, 0)]
    ones = torch.ones(8, 1, 16, 16)
    cut = diff_augment(ones, ("cutout",), make_generator(0))
    zeros = (cut == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 64).all()  # at most an 8x8 square
    assert set(cut.unique().tolist()) == {0.0, 1.0}


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(img)
    h, w = img.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out
