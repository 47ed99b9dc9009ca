"""What every loss space shares: evaluating B parameter vectors at once, and the sparse simplex map of mixtures."""

import torch
import torch.nn.functional as F


class LossSpace:
    """A family of classification losses indexed by a flat parameter vector theta.

    A subclass gives ``name``, ``dim``, ``names()`` (one name per entry of theta), ``identity()`` (the theta of
    exactly cross-entropy) and ``from_log_probs``; a space that changes logits before the softmax (the AM-LFS
    ``t``) also overrides ``transform_logits`` and sets ``needs_cosine_head``.
    """

    name = ""
    dim = 0
    needs_cosine_head = False
    scale = 1.0

    def names(self) -> list[str]:
        raise NotImplementedError

    def identity(self) -> torch.Tensor:
        raise NotImplementedError

    def from_log_probs(self, theta: torch.Tensor, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample losses [B, N] from log-softmax outputs [B, N, C] and targets [B, N] under theta [B, dim]."""
        raise NotImplementedError

    def transform_logits(self, theta: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The logits the softmax sees: unchanged unless the space transforms them."""
        return logits

    def meaning(self, theta: torch.Tensor) -> dict[str, float]:
        """The loss's own parameters (weights, exponents) at one vector theta [dim], where they differ from theta."""
        return {}

    def project(self, theta: torch.Tensor) -> torch.Tensor:
        """Where a controller's centre theta [dim] may be: the search moves it back here after every update.
        Unchanged unless the space has regions where a small step changes nothing (e.g. a clamped parameter)."""
        return theta

    def loss(self, theta: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample losses [B, N] for B parameter vectors.

        theta: [B, dim]. logits: [B, N, C], or [N, C] shared by all B. target: [N] or [B, N].
        """
        if theta.shape[-1] != self.dim:
            raise ValueError(f"theta has {theta.shape[-1]} entries, space={self.name} needs {self.dim}")
        b = theta.shape[0]
        logits = logits.expand(b, *logits.shape[-2:])
        target = target.expand(b, logits.shape[1])
        theta = theta.to(logits.dtype)
        logits = self.transform_logits(theta, logits, target)
        return self.from_log_probs(theta, F.log_softmax(logits, dim=-1), target)

    def probability_curve(self, theta: torch.Tensor, p: torch.Tensor, classes: int) -> torch.Tensor:
        """L [B, len(p)] as a function of the target probability p, the other classes sharing 1 - p equally."""
        log_probs = uniform_rest_log_probs(p, classes)
        b = theta.shape[0]
        target = torch.zeros(len(p), dtype=torch.long, device=p.device)
        return self.from_log_probs(theta.to(p.dtype), log_probs.expand(b, *log_probs.shape), target.expand(b, -1))


def uniform_rest_log_probs(p: torch.Tensor, classes: int) -> torch.Tensor:
    """Log-probabilities [len(p), classes]: class 0 has probability p, the others share 1 - p equally."""
    rest = ((1 - p) / (classes - 1)).log().unsqueeze(-1).expand(-1, classes - 1)
    return torch.cat([p.log().unsqueeze(-1), rest], dim=-1)


def target_log_prob(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p_y [..., N] from log-probabilities [..., N, C] and targets [..., N]."""
    return log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def sparsemax(scores: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of each row of `scores` [..., K] onto the probability simplex.

    Unlike a softmax it reaches the simplex's faces: entries far enough below the largest are exactly 0, so a
    mixture can be exactly one of its terms. As a projection it is 1-Lipschitz: a step of size s in the scores moves
    the weights by at most s (Martins and Astudillo 2016).
    """
    k = scores.shape[-1]
    ordered = scores.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(-1)
    ranks = torch.arange(1, k + 1, dtype=scores.dtype, device=scores.device)
    support = (1 + ranks * ordered > cumulative).sum(-1, keepdim=True)
    threshold = (cumulative.gather(-1, support - 1) - 1) / support.to(scores.dtype)
    return (scores - threshold).clamp_min(0)
