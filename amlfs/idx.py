"""Reader for the IDX files that MNIST and Fashion-MNIST ship in (plain or gzipped)."""

import gzip
import zlib
from pathlib import Path

import numpy as np


class DataFileError(ValueError):
    """A data file exists but cannot be read as what it claims to be."""


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX file into a uint8 array, checking its header against its size."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{path}: not a readable gzip file ({err}); delete it and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFileError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataFileError(f"{path}: holds {len(raw)} bytes, its header {shape} needs {expected}; file truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
