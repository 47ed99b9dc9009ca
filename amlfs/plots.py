"""Pictures of searched losses: L(p_y) and, where searched, the logit transform t."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from amlfs.spaces import LossSpace

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` drawing off-screen; matplotlib, a second to import, loads on the first figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def loss_curves(space: LossSpace, curves: dict[str, torch.Tensor], classes: int, points: int = 400) -> Figure:
    """A figure of each named parameter vector's loss against p_y (the other `classes` - 1 sharing 1 - p_y
    equally), and t(cos) if the space transforms the target cosine. Cross-entropy is drawn for reference.
    """
    curves = {"cross-entropy": space.identity(), **curves}
    p = torch.linspace(1e-3, 1.0, points, dtype=torch.float64)
    panels = [("loss", p, "target probability p_y", "loss L(p_y)")]
    if space.needs_cosine_head:
        panels.append(("t", torch.linspace(-1.0, 1.0, points, dtype=torch.float64), "target cosine", "t(cos)"))
    figure, axes = subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, (name, x, xlabel, ylabel) in zip(axes[0], panels):
        for label, theta in curves.items():
            theta = theta.detach().double().cpu().unsqueeze(0)
            if name == "t":
                y = space.transform("t", theta, x.unsqueeze(0))[0]
            else:
                y = space.probability_curve(theta, x, classes)[0]
            style = {"color": "black", "linestyle": "--"} if label == "cross-entropy" else {}
            axis.plot(x.numpy(), y.numpy(), label=label, **style)
        if name == "loss":
            axis.set_ylim(-0.5, 1.5 * float(-p[0].log()))
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    return figure


def probability_curves(p: torch.Tensor, curves: dict[str, torch.Tensor], title: str) -> Figure:
    """One line per named loss, L against p_y."""
    figure, axis = subplots(figsize=(6.5, 4.2))
    for name, values in curves.items():
        axis.plot(p.numpy(), values.detach().double().cpu().numpy(), label=name)
    axis.set_ylim(-0.5, 1.5 * float(-p[0].log()))
    axis.set_xlabel("target probability p_y")
    axis.set_ylabel("loss")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    if curves:  # evaluate.rows=[search_model] retrains nothing and has no curve
        axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    return figure
