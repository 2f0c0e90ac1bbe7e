"""Wasserstein GAN losses: pure functions of critic scores, tested on their own.

- WGAN (Arjovsky et al. 2017, the paper's "Wasserstein GAN"): critic maximises
  E[D(real)] - E[D(fake)] under a Lipschitz constraint enforced by clipping every critic weight to
  [-clip, clip] after each step (RMSprop, clip 0.01, 5 critic steps per generator step).
- WGAN-GP (Gulrajani et al. 2017): the same objective plus lambda * E[(||grad D(x_hat)|| - 1)^2] on
  random interpolates x_hat between real and fake (Adam, lambda 10, 5 critic steps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Minimised by the critic: E[D(fake)] - E[D(real)] (the negated Wasserstein estimate)."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Minimised by the generator: -E[D(fake)]."""
    return -fake_scores.mean()


def wasserstein_estimate(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[D(real)] - E[D(fake)]: the critic's estimate of the W-distance (up to the constant K)."""
    return real_scores.mean() - fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """E[(||grad_x critic(x)|| - 1)^2] at x = alpha * real + (1 - alpha) * fake (unweighted).

    `alpha` is (B, 1, 1, 1) in [0, 1], drawn by the caller from its explicit generator. The graph
    is kept (create_graph) so the penalty trains the critic.
    """
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)  # (B,)
    return ((norms - 1) ** 2).mean()


@torch.no_grad()
def clip_weights_(parameters: Iterable[torch.nn.Parameter], clip: float) -> None:
    """WGAN's Lipschitz constraint: clamp every critic parameter to [-clip, clip] in place."""
    for p in parameters:
        p.clamp_(-clip, clip)
