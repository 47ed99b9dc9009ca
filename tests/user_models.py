"""Models a user might bring (importable as ``user_models.*`` by the tests and their subprocesses)."""

import torch.nn as nn

import amlfs


def small_net(image_shape, num_classes, width=8):
    """A plain network with a linear head."""
    channels, height, width_px = image_shape
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(width * height * width_px, num_classes))


def cosine_net(image_shape, num_classes, scale):
    """A network ending in amlfs.CosineHead, for space=amlfs."""
    channels, height, width = image_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 32), nn.ReLU(),
                         amlfs.CosineHead(32, num_classes, scale=scale))


def not_a_model(image_shape, num_classes):
    """Returns no module at all."""
    return 42


def linear_net(image_shape, num_classes, scale):
    """Takes a scale but ends in a linear layer: not a model for space=amlfs."""
    return small_net(image_shape, num_classes)


def three_logits(image_shape, num_classes):
    """Returns logits for 3 classes whatever the data has."""
    return small_net(image_shape, 3)


def frozen_net(image_shape, num_classes):
    """Nothing to train."""
    return small_net(image_shape, num_classes).requires_grad_(False)


def fixed_input_net(image_shape, num_classes):
    """Built for 17 input values, whatever the images are."""
    return nn.Sequential(nn.Flatten(), nn.Linear(17, num_classes))
