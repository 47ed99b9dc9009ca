"""Files written whole or not at all: temporary file, fsync, rename."""

import io
import json
import os
import tempfile
from pathlib import Path

import torch


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader never sees a partial file, even after a crash."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value) -> None:
    write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


def write_torch(path: Path, value) -> None:
    """``torch.save(value, path)``, written whole or not at all."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    write_bytes(path, buffer.getvalue())
