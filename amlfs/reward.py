"""A child's reward from its confusion matrix on the reward split: accuracy, or accuracy corrected for label noise.

Under class-dependent label noise with transition matrix T (``T[i, j]``: probability that an image of class i is
labelled j), the expected confusion matrix against the noisy labels is ``Q = C T``, C the one against the clean
labels (rows: predicted class). So ``trace(Q T^-1) / n`` estimates the clean accuracy from noisy labels alone; it
tells a child that classifies one more flipped image right by a full count, where the noisy accuracy sees a fraction.
T is estimated by anchor points (Patrini et al., CVPR 2017): for each class i, the predicted distribution over the
noisy labels of the training image ranked at the 97th percentile of p(i | x) under a model trained on those labels
(the broadcast model, or one trained with cross-entropy: ``TRANSITION_MODELS``). A model trained with a robust loss
does not fit the flipped labels, and its anchors under-estimate the flips.
"""

import logging

import torch

log = logging.getLogger("amlfs")

REWARDS = ("accuracy", "corrected")
TRANSITION_MODELS = ("broadcast", "ce")
"""Config ``search.transition_model``: the model whose outputs the anchor points read, the search's broadcast model or
one trained with cross-entropy from the same initial weights (the estimate then does not depend on the losses the
search has tried; RESULTS.md)."""
ANCHOR_QUANTILE = 0.97
MAX_CONDITION = 20.0
"""An estimate with a larger condition number is not used: ``T^-1`` would amplify the estimate's errors. The standard
noise models stay below 12 (asymmetric flips of 45%, 80% symmetric noise over 10 classes)."""


def accuracies(confusion: torch.Tensor) -> torch.Tensor:
    """Accuracy [B] from confusion matrices [B, K, K] (float64)."""
    confusion = confusion.double()
    return confusion.diagonal(dim1=-2, dim2=-1).sum(-1) / confusion.sum((-2, -1))


def corrected_weights(transition: torch.Tensor) -> torch.Tensor:
    """What one image predicted i with noisy label j counts, ``W[i, j] = (T^-1)[j, i]``, in the clean accuracy that
    `corrected_accuracies` estimates (the identity for plain accuracy)."""
    return torch.linalg.inv(transition.double()).T


def corrected_accuracies(confusion: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """The clean accuracy [B] that confusion matrices [B, K, K] against noisy labels imply under `transition` [K, K]:
    the mean over the images of `corrected_weights`."""
    confusion = confusion.double()
    weights = corrected_weights(transition).to(confusion.device)
    return (confusion * weights).sum((-2, -1)) / confusion.sum((-2, -1))


def corrected_spreads(confusion: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """The standard deviation [B] over the images of the per-image terms that `corrected_accuracies` averages, so
    that one standard error of the estimate on n images is it over sqrt(n) (``sqrt(a (1 - a))`` for plain
    accuracy a)."""
    confusion = confusion.double()
    squares = corrected_weights(transition).to(confusion.device).square()
    second_moment = (confusion * squares).sum((-2, -1)) / confusion.sum((-2, -1))
    return (second_moment - corrected_accuracies(confusion, transition).square()).clamp_min(0).sqrt()


def anchor_transition(probabilities: torch.Tensor, quantile: float = ANCHOR_QUANTILE) -> torch.Tensor:
    """T [K, K] estimated from a model's softmax outputs [N, K] on noisily labelled images: row i is the output on the
    image at the `quantile` of p(i | x) (the anchor of class i; a high quantile rather than the maximum, which
    tends to be an outlier)."""
    probabilities = probabilities.double()
    rank = min(int(quantile * len(probabilities)), len(probabilities) - 1)
    anchors = probabilities.argsort(0)[rank]
    return probabilities[anchors]


class Reward:
    """The reward rule of config ``search.reward``: `accuracy`, or `corrected` (from epoch `transition_epoch` on,
    with T estimated from the broadcast model at its start; earlier epochs and an unusable T reward accuracy)."""

    def __init__(self, kind: str, transition_epoch: int):
        self.kind = kind
        self.transition_epoch = transition_epoch
        self.transition: torch.Tensor | None = None

    def wants_transition(self, epoch: int) -> bool:
        return self.kind == "corrected" and epoch == self.transition_epoch and self.transition is None

    def set_transition(self, transition: torch.Tensor) -> bool:
        """Use `transition` from now on; False (and a warning) when it cannot be a noise model to correct with: a row
        whose largest entry is not its diagonal (the noisy label is then not the most likely one, and the clean class
        is not identifiable), or a condition number above `MAX_CONDITION`."""
        transition = transition.double()
        rows = torch.nonzero(transition.argmax(1) != torch.arange(len(transition))).flatten().tolist()
        condition = float(torch.linalg.cond(transition))
        if rows or not condition <= MAX_CONDITION:
            why = (f"in the rows of classes {rows} the diagonal is not the largest entry" if rows else
                   f"its condition number is {condition:.3g} (at most {MAX_CONDITION:.0f} is usable)")
            log.warning("search.reward=corrected: the noise transition estimated from the broadcast model is not "
                        "usable (%s; the model may be too weak: a later search.transition_epoch helps); the reward "
                        "stays the plain accuracy", why)
            return False
        self.transition = transition.cpu()
        return True

    def __call__(self, confusion: torch.Tensor) -> torch.Tensor:
        """Rewards [B] (float64, on the CPU) from confusion matrices [B, K, K] on the reward split."""
        confusion = confusion.cpu()
        if self.transition is None:
            return accuracies(confusion)
        return corrected_accuracies(confusion, self.transition)
