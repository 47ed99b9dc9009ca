"""Loss search spaces, one module each, named as in the config group ``space``.

Every space maps B parameter vectors theta [B, dim] to per-sample losses in one call (``LossSpace.loss``), and
its ``identity()`` is exactly cross-entropy.
"""

from functools import partial

from amlfs.spaces import amlfs, barron, mixture, poly
from amlfs.spaces.base import LossSpace

BUILDERS = {
    **{variant: partial(amlfs.build, variant) for variant in amlfs.VARIANTS},
    "mixture": lambda scale, max_gap=None, min_active=0.0: mixture.MixtureSpace(max_gap, min_active),
    "poly": lambda scale, terms=3: poly.PolySpace(terms),
    "barron": lambda scale: barron.BarronSpace(),
}
"""Config ``space.name`` -> a function of the cosine head's scale and the space's own config keys."""


def build_space(name: str, scale: float = 1.0, **options) -> LossSpace:
    """The space of config ``space=<name>`` with its keys `options` (e.g. intervals, continuous, terms)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown space {name!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[name](scale, **options)


CONTROLLER_KEYS = ("reinforce_lr",)
"""Keys of a space's config that its controller reads (the REINFORCE step that fits the space's scale)."""


def space_of(cfg) -> LossSpace:
    """The space a search config describes (its ``space`` group and the cosine head's ``model.scale``)."""
    options = {key: value for key, value in cfg.space.items() if key != "name" and key not in CONTROLLER_KEYS}
    return build_space(cfg.space.name, cfg.model.get("scale", 1.0), **options)


__all__ = ["BUILDERS", "LossSpace", "build_space", "space_of"]
