"""SRR: finite, non-zero gradients; optimising it alone whitens a toy batch."""

from __future__ import annotations

import pytest
import torch
from scale_scheduler.policy.srr import feature_statistics, srr_loss


def test_srr_gives_finite_nonzero_gradients_on_random_features() -> None:
    generator = torch.Generator().manual_seed(0)
    features = (torch.randn(64, 16, generator=generator) * 3 + 2).requires_grad_()
    loss = srr_loss(features)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0


def test_srr_decreases_when_optimised_alone_and_whitens_the_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(128, 8, generator=generator)
    mixing = torch.randn(8, 8, generator=generator)
    features = (base @ mixing + 3).requires_grad_()  # correlated, shifted, scaled
    optimiser = torch.optim.Adam([features], lr=0.05)
    first = srr_loss(features, 1.0, 1.0).item()
    for _ in range(600):
        optimiser.zero_grad()
        loss = srr_loss(features, 1.0, 1.0)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * first
    stats = feature_statistics(features.detach())
    assert abs(stats["feature_abs_mean"]) < 0.2
    assert stats["feature_variance"] == pytest.approx(1.0, abs=0.2)
    assert stats["mean_abs_offdiag_correlation"] < 0.15


def test_srr_rejects_a_single_sample() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        srr_loss(torch.zeros(1, 4))
