"""Label noise: observed rates, the asymmetric class maps (named, pair flipping, your own), determinism."""

import numpy as np
import pytest

from amlfs.noise import ASYMMETRIC_MAPS, CIFAR100_SUPERCLASSES, asymmetric_targets, corrupt_labels


def balanced(classes: int, per_class: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(np.repeat(np.arange(classes), per_class))


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.8])
def test_symmetric_rate_and_targets(rate):
    labels = np.random.default_rng(1).integers(0, 10, 45000)
    noisy = corrupt_labels(labels, "symmetric", rate, 10, seed=0)
    changed = noisy != labels
    assert abs(changed.mean() - rate) < 0.01
    for c in range(10):
        assert abs(changed[labels == c].mean() - rate) < 0.01
    targets = np.bincount(noisy[changed & (labels == 0)], minlength=10)
    assert targets[0] == 0
    assert targets[1:].min() > 0.8 * targets[1:].mean()  # uniform over the other nine classes


@pytest.mark.parametrize("class_map,classes,mapping", [
    *[(name, classes, ASYMMETRIC_MAPS[name]) for name, classes in [("mnist", 10), ("fashion_mnist", 10), ("cifar10", 10),
                                                                    ("cifar100", 100)]],
    ("pair", 6, {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 0}),
    ({1: 3, 4: 0}, 5, {1: 3, 4: 0}),
])
def test_asymmetric_noise_follows_the_map(class_map, classes, mapping):
    labels = balanced(classes, 500)
    noisy = corrupt_labels(labels, "asymmetric", 0.4, classes, seed=0, class_map=class_map)
    changed = noisy != labels
    assert all(noisy[i] == mapping[labels[i]] for i in np.flatnonzero(changed))
    for c in range(classes):
        expected = 0.4 if c in mapping and mapping[c] != c else 0.0
        assert changed[labels == c].mean() == pytest.approx(expected, abs=0.002)


def test_published_maps():
    assert ASYMMETRIC_MAPS["cifar10"] == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    assert ASYMMETRIC_MAPS["mnist"] == {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
    assert sorted(c for group in CIFAR100_SUPERCLASSES for c in group) == list(range(100))
    superclass = {c: i for i, group in enumerate(CIFAR100_SUPERCLASSES) for c in group}
    cifar100 = ASYMMETRIC_MAPS["cifar100"]
    assert sorted(cifar100.values()) == list(range(100))  # a permutation
    assert all(superclass[a] == superclass[b] and a != b for a, b in cifar100.items())
    assert cifar100[4] == 30 and cifar100[95] == 4  # beaver -> dolphin, whale -> beaver (aquatic mammals)


def test_same_seed_same_noise_other_seed_other_noise():
    labels = balanced(10, 100)
    first = corrupt_labels(labels, "symmetric", 0.4, 10, seed=3)
    assert np.array_equal(first, corrupt_labels(labels, "symmetric", 0.4, 10, seed=3))
    assert not np.array_equal(first, corrupt_labels(labels, "symmetric", 0.4, 10, seed=4))
    assert np.array_equal(corrupt_labels(labels, "none", 0.4, 10, seed=3), labels)


def test_a_named_map_written_out_gives_the_same_noise_with_keys_as_json_writes_them():
    labels = balanced(10, 300)
    named = corrupt_labels(labels, "asymmetric", 0.4, 10, seed=5, class_map="mnist")
    written = {str(source): target for source, target in ASYMMETRIC_MAPS["mnist"].items()}
    assert np.array_equal(named, corrupt_labels(labels, "asymmetric", 0.4, 10, seed=5, class_map=written))


def test_unknown_kind_or_map_is_refused():
    with pytest.raises(ValueError, match="noise.kind"):
        corrupt_labels(np.zeros(4, dtype=int), "pairflip", 0.2, 10, seed=0)
    with pytest.raises(ValueError, match="not a noise map"):
        corrupt_labels(np.zeros(4, dtype=int), "asymmetric", 0.2, 10, seed=0, class_map="svhn")


@pytest.mark.parametrize("class_map,classes,message", [
    ({}, 10, "empty map"),
    ({3: 3}, 10, "class 3 is mapped to itself"),
    ({0: 10}, 10, "class 10 is out of range for 10 classes"),
    ("cifar100", 10, "out of range for 10 classes"),
    ({-1: 2}, 10, "-1 is not a class index"),
    ({0: True}, 10, "True is not a class index"),
    ({"a": 1}, 10, "'a' is not a class index"),
    ([0, 1], 10, "not a noise map"),
    (None, 10, "not a noise map"),
    ("pair", None, "needs the number of classes"),
])
def test_a_map_that_is_no_map_is_refused(class_map, classes, message):
    with pytest.raises(ValueError, match=message):
        asymmetric_targets(class_map, classes)
