"""What tells that a file the server re-reads (certificates, JWKS) has changed, without reading it."""

from __future__ import annotations

import os

Stamp = tuple[int, int, int] | None
Signature = tuple[Stamp, ...]


def stamp(path: str) -> Stamp:
    """The inode (a file replaced by a rename, even within the filesystem's mtime granularity), the modification
    time and the size; None when the file is missing now."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def signature(paths: list[str]) -> Signature:
    return tuple(stamp(path) for path in paths)
