"""Seeds derived from the run seed, one independent stream per purpose."""

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by `parts` (e.g. run seed, purpose, epoch), stable across processes."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
