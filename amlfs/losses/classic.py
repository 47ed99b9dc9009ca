"""Classic classification losses: cross-entropy, label smoothing, focal, Poly-1."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from amlfs.losses import reduction as reductions


class _PerSampleLoss(nn.Module):
    """A loss defined per sample from log-probabilities; subclasses give ``per_sample(log_probs, target)``."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reductions.check(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reductions.reduce(self.unreduced(logits, target), self.reduction)

    def unreduced(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each sample [N] of `logits` [N, C], whatever ``reduction`` is."""
        return self.per_sample(F.log_softmax(logits, dim=-1), target)

    @staticmethod
    def target_log_prob(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)


class CrossEntropy(_PerSampleLoss):
    """-log p_y."""

    def per_sample(self, log_probs, target):
        return -self.target_log_prob(log_probs, target)


class LabelSmoothing(_PerSampleLoss):
    """Cross-entropy against (1 - eps) one-hot + eps uniform (Szegedy et al. 2016)."""

    def __init__(self, eps: float = 0.1, reduction: str = "mean"):
        super().__init__(reduction)
        self.eps = eps

    def per_sample(self, log_probs, target):
        return -(1 - self.eps) * self.target_log_prob(log_probs, target) - self.eps * log_probs.mean(-1)


class FocalLoss(_PerSampleLoss):
    """-(1 - p_y)^gamma log p_y (Lin et al. 2017)."""

    def __init__(self, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.gamma = gamma

    def per_sample(self, log_probs, target):
        log_p = self.target_log_prob(log_probs, target)
        return -((1 - log_p.exp()) ** self.gamma) * log_p


class PolyLoss(_PerSampleLoss):
    """Poly-1: -log p_y + eps (1 - p_y) (Leng et al. 2022)."""

    def __init__(self, eps: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.eps = eps

    def per_sample(self, log_probs, target):
        log_p = self.target_log_prob(log_probs, target)
        return -log_p + self.eps * (1 - log_p.exp())
