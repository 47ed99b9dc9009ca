"""Synthetic label noise: symmetric flips and asymmetric (class-dependent) ones: the standard maps, pair flipping, or
a map of your own."""

from collections.abc import Mapping

import numpy as np

CIFAR100_SUPERCLASSES = [
    [4, 30, 55, 72, 95], [1, 32, 67, 73, 91], [54, 62, 70, 82, 92], [9, 10, 16, 28, 61], [0, 51, 53, 57, 83],
    [22, 39, 40, 86, 87], [5, 20, 25, 84, 94], [6, 7, 14, 18, 24], [3, 42, 43, 88, 97], [12, 17, 37, 68, 76],
    [23, 33, 49, 60, 71], [15, 19, 21, 31, 38], [34, 63, 64, 66, 75], [26, 45, 77, 79, 99], [2, 11, 35, 46, 98],
    [27, 29, 44, 78, 93], [36, 50, 65, 74, 80], [47, 52, 56, 59, 96], [8, 13, 48, 58, 90], [41, 69, 81, 85, 89],
]
"""The 20 CIFAR-100 superclasses, each listing its 5 fine labels in increasing order."""

ASYMMETRIC_MAPS = {
    # 2->7, 3->8, 5<->6, 7->1 (Han et al. 2018; Patrini et al. 2017)
    "mnist": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
    # T-shirt/top->Shirt, Pullover->Coat, Sandal->Sneaker, Ankle boot->Sneaker: the most confused pairs
    "fashion_mnist": {0: 6, 2: 4, 5: 7, 9: 7},
    # truck->automobile, bird->airplane, deer->horse, cat<->dog (Patrini et al. 2017)
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
    # each fine class -> the next fine class of its superclass, circularly
    "cifar100": {c: group[(i + 1) % len(group)] for group in CIFAR100_SUPERCLASSES for i, c in enumerate(group)},
}


PAIR = "pair"
"""The map of pair flipping (Han et al., NeurIPS 2018): every class to the next, the last to the first."""


def _class(value, num_classes: int | None) -> int:
    """A class index of a map: an integer, or its decimal string (the form JSON gives a mapping's keys)."""
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a class index (an integer >= 0)")
    if num_classes is not None and value >= num_classes:
        raise ValueError(f"class {value} is out of range for {num_classes} classes")
    return value


def asymmetric_targets(class_map: str | Mapping | None, num_classes: int | None = None) -> dict[int, int]:
    """The flips of asymmetric noise, {source class: target class}, from a name of `ASYMMETRIC_MAPS`, `PAIR`, or a
    mapping of your own ({0: 6, 2: 4}); classes are checked against `num_classes` when it is given."""
    if isinstance(class_map, Mapping):
        if not class_map:
            raise ValueError("an empty map flips nothing")
        targets = {_class(source, num_classes): _class(target, num_classes) for source, target in class_map.items()}
        selves = [source for source, target in targets.items() if source == target]
        if selves:
            raise ValueError(f"class {selves[0]} is mapped to itself")
        return targets
    if class_map == PAIR:
        if num_classes is None:
            raise ValueError("pair flipping needs the number of classes")
        return {c: (c + 1) % num_classes for c in range(num_classes)}
    if not isinstance(class_map, str) or class_map not in ASYMMETRIC_MAPS:
        raise ValueError(f"not a noise map: name one of {sorted([*ASYMMETRIC_MAPS, PAIR])} "
                         "or give a mapping {source: target}")
    return asymmetric_targets(ASYMMETRIC_MAPS[class_map], num_classes)


def corrupt_labels(labels: np.ndarray, kind: str, rate: float, num_classes: int, seed: int,
                   class_map: str | Mapping | None = None) -> np.ndarray:
    """Noisy copy of `labels`: in each affected class, exactly round(rate * class size) labels, chosen by `seed`, change.

    symmetric: to a uniformly chosen other class. asymmetric: by `asymmetric_targets` (class_map);
    classes absent from the map keep their labels.
    """
    if kind == "none" or rate == 0:
        return labels.copy()
    if kind == "symmetric":
        targets = {c: None for c in range(num_classes)}
    elif kind == "asymmetric":
        targets = asymmetric_targets(class_map, num_classes)
    else:
        raise ValueError(f"dataset.noise.kind={kind!r}: choose none, symmetric or asymmetric")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    for source, target in targets.items():
        members = np.flatnonzero(labels == source)
        flipped = rng.permutation(members)[: int(round(rate * len(members)))]
        if target is None:
            noisy[flipped] = (source + rng.integers(1, num_classes, size=len(flipped))) % num_classes
        else:
            noisy[flipped] = target
    return noisy
