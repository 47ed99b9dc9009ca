"""Losses robust to label noise: MAE, GCE, SCE, NCE+RCE."""

import math

import torch

from amlfs.losses.classic import _PerSampleLoss

RCE_LOG_ZERO = math.log(1e-4)
"""A = log 0 in the reverse cross-entropy, RCE = -A (1 - p_y): the one-hot label clamped at 1e-4, as in the
reference implementations of SCE (Wang et al. 2019) and NCE+RCE (Ma et al. 2020); the paper's "A = -4" is log10."""


def reverse_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_k p_k log q_k with q the one-hot label and log 0 := A: -A (1 - p_y)."""
    return -RCE_LOG_ZERO * (1 - _PerSampleLoss.target_log_prob(log_probs, target).exp())


class MeanAbsoluteError(_PerSampleLoss):
    """|p - onehot|_1 = 2 (1 - p_y) (Ghosh et al. 2017)."""

    def per_sample(self, log_probs, target):
        return 2 * (1 - self.target_log_prob(log_probs, target).exp())


class GeneralizedCrossEntropy(_PerSampleLoss):
    """(1 - p_y^q) / q (Zhang and Sabuncu 2018): cross-entropy as q -> 0, MAE/2 at q = 1."""

    def __init__(self, q: float = 0.7, reduction: str = "mean"):
        super().__init__(reduction)
        self.q = q

    def per_sample(self, log_probs, target):
        return (1 - (self.q * self.target_log_prob(log_probs, target)).exp()) / self.q


class SymmetricCrossEntropy(_PerSampleLoss):
    """alpha CE + beta RCE (Wang et al. 2019)."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.alpha, self.beta = alpha, beta

    def per_sample(self, log_probs, target):
        ce = -self.target_log_prob(log_probs, target)
        return self.alpha * ce + self.beta * reverse_cross_entropy(log_probs, target)


class NCEandRCE(_PerSampleLoss):
    """alpha NCE + beta RCE (Ma et al. 2020), NCE = log p_y / sum_k log p_k."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.alpha, self.beta = alpha, beta

    def per_sample(self, log_probs, target):
        nce = self.target_log_prob(log_probs, target) / log_probs.sum(-1)
        return self.alpha * nce + self.beta * reverse_cross_entropy(log_probs, target)
