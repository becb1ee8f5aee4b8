"""Structured Representation Regularization (SRR): keep the attention features' batch statistics
fixed (decorrelated, mean 0, variance 1) so they cannot drift with the number of nodes.

Added to the PPO loss in the same backward pass (see ``ppo.py``).
"""

from __future__ import annotations

import torch

from .config import DEFAULT_DECORRELATION_COEF, DEFAULT_KL_COEF

_EPS = 1e-5


def srr_loss(
    features: torch.Tensor,
    decorrelation_coef: float = DEFAULT_DECORRELATION_COEF,
    kl_coef: float = DEFAULT_KL_COEF,
) -> torch.Tensor:
    """SRR on a batch of features [B, D]: decorrelation + KL toward N(0, 1).

    decorrelation: mean squared off-diagonal entry of the batch correlation matrix (covariance
        normalised by the standard deviations, so it penalises structure, not scale).
    KL: mean over dimensions of KL(N(mu_d, var_d) || N(0, 1)) = 0.5 (var + mu^2 - 1 - log var),
        with mu_d, var_d the batch mean and variance of dimension d.
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(
            f"srr_loss needs a batch of at least 2 feature vectors [B, D]; got shape {tuple(features.shape)}"
        )
    dims = features.shape[1]
    mean = features.mean(dim=0)  # [D]
    centred = features - mean
    variance = centred.pow(2).mean(dim=0)  # [D]
    standardised = centred / torch.sqrt(variance + _EPS)
    correlation = standardised.T @ standardised / features.shape[0]  # [D, D]
    off_diagonal = correlation - torch.diag(torch.diagonal(correlation))
    decorrelation = off_diagonal.pow(2).sum() / max(dims * (dims - 1), 1)
    kl = 0.5 * (variance + mean.pow(2) - 1.0 - torch.log(variance + _EPS)).mean()
    return decorrelation_coef * decorrelation + kl_coef * kl


def feature_statistics(features: torch.Tensor) -> dict[str, float]:
    """What `diagnose` reports: mean and variance (averaged over dimensions) and the mean absolute
    off-diagonal correlation of a batch of features [B, D]."""
    mean = features.mean(dim=0)
    variance = features.var(dim=0, unbiased=False)
    standardised = (features - mean) / torch.sqrt(variance + _EPS)
    correlation = standardised.T @ standardised / features.shape[0]
    dims = features.shape[1]
    off_diagonal = (correlation - torch.diag(torch.diagonal(correlation))).abs().sum() / max(dims * (dims - 1), 1)
    return {
        "feature_mean": float(mean.mean()),
        "feature_abs_mean": float(mean.abs().mean()),
        "feature_variance": float(variance.mean()),
        "mean_abs_offdiag_correlation": float(off_diagonal),
    }
