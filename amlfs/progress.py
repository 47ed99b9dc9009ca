"""Progress inside long epochs: a tqdm bar on the terminal, nothing in logs, pipes and CI."""

import math
import sys

from tqdm import tqdm


def progress(total: int, description: str) -> tqdm:
    """A bar of `total` steps that clears itself when done; disabled unless stderr is a terminal."""
    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True, disable=not sys.stderr.isatty())


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return math.ceil(examples / batch_size)
