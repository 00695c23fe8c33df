"""Extracting the official Web UI build from the `temporal` binary: the real one, a synthetic ELF, and garbage."""

from __future__ import annotations

import importlib.metadata
import shutil
import struct
import sys
import threading
from pathlib import Path

import pytest

from tempyral.ui import assets
from tempyral.ui.assets import MARKER, UiAssetsError, ensure_assets, find_binary, read_embedded

INDEX = b"<!doctype html>\n<html lang='en'><body>synthetic</body></html>\n"


def synthetic_elf(entries: list[tuple[str, bytes]], base: int = 0x400000) -> bytes:
    """A little-endian 64-bit ELF with one PT_LOAD segment holding Go embed entries for `entries`, in order."""
    blob = bytearray(b"\0" * 0x100)
    refs: list[tuple[int, int, int, int]] = []
    for name, data in entries:
        name_at = len(blob)
        blob += name.encode() + b"\0"
        data_at = len(blob)
        blob += data + b"\0"
        refs.append((name_at, len(name.encode()), data_at, len(data)))
    blob += b"\0" * (-len(blob) % 8)
    blob += b"\xff" * 48  # not an entry: the walk stops here
    for name_at, name_len, data_at, data_len in refs:
        blob += struct.pack(
            "<QQQQ16s", base + name_at, name_len, base + data_at if data_len else 0, data_len, b"h" * 16
        )
    blob += b"\xff" * 48
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, len(blob), len(blob), 0x1000)
    blob[:64] = header
    blob[64 : 64 + 56] = phdr
    return bytes(blob)


def ui_entries(app_files: int = 60) -> list[tuple[str, bytes]]:
    # Sorted as Go's embed sorts them: directory entries end in "/" and have no data.
    entries: list[tuple[str, bytes]] = [
        ("assets/", b""),
        ("assets/local/", b""),
        ("assets/local/_app/", b""),
        ("assets/local/favicon.ico", b"\0\0\1\0icon"),
        ("assets/local/index.html", INDEX),
    ]
    entries += [
        (f"assets/local/_app/immutable/chunks/c{i:03}.js", f"export const n={i};".encode()) for i in range(app_files)
    ]
    return entries


def test_the_real_binary_yields_the_ui_build(tmp_path: Path) -> None:
    binary = find_binary()
    target = ensure_assets(binary, tmp_path)
    index = (target / "index.html").read_text()
    assert "<html" in index and "/_app/immutable/" in index
    assert (target / "favicon.ico").stat().st_size > 0
    app = [p for p in (target / "_app").rglob("*") if p.is_file()]
    assert len(app) > 300
    assert any(p.suffix == ".css" for p in app) and any(p.suffix == ".js" for p in app)
    assert (target / MARKER).is_file()
    # Every script the index refers to was extracted.
    for ref in index.split('"'):
        if ref.startswith("/_app/") and ref.endswith(".js"):
            assert (target / ref.lstrip("/")).is_file(), ref


def test_the_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "temporal"
    binary.write_bytes(synthetic_elf(ui_entries()))
    first = ensure_assets(binary, tmp_path / "cache")
    (first / "index.html").write_bytes(b"<html>changed</html>")  # a re-extraction would overwrite this

    def fail(_image: object) -> dict[str, bytes]:
        raise AssertionError("extracted again")

    monkeypatch.setattr(assets, "read_embedded", fail)
    assert ensure_assets(binary, tmp_path / "cache") == first
    assert (first / "index.html").read_bytes() == b"<html>changed</html>"


def test_an_incomplete_cache_directory_is_replaced(tmp_path: Path) -> None:
    binary = tmp_path / "temporal"
    binary.write_bytes(synthetic_elf(ui_entries()))
    target = ensure_assets(binary, tmp_path / "cache")
    (target / MARKER).unlink()  # as if a crash had left it half-written
    (target / "index.html").unlink()
    assert ensure_assets(binary, tmp_path / "cache") == target
    assert (target / "index.html").read_bytes() == INDEX
    assert (target / MARKER).is_file()


def test_the_walk_goes_both_ways_and_skips_directories(tmp_path: Path) -> None:
    files = read_embedded(synthetic_elf(ui_entries()))
    assert files["index.html"] == INDEX
    assert files["favicon.ico"] == b"\0\0\1\0icon"  # before index.html in the table
    assert files["_app/immutable/chunks/c059.js"] == b"export const n=59;"  # after it
    assert len(files) == 62
    assert not any(name.endswith("/") for name in files)


def test_concurrent_starts_see_a_complete_cache(tmp_path: Path) -> None:
    binary = tmp_path / "temporal"
    binary.write_bytes(synthetic_elf(ui_entries(300)))
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target = ensure_assets(binary, tmp_path / "cache")
            assert (target / "index.html").read_bytes() == INDEX
            assert len(list((target / "_app").rglob("*.js"))) == 300
            results.append(target)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(results) == 6
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p != results[0]]
    assert leftovers == []


def test_garbage_fails_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "temporal"
    garbage.write_bytes(b"#!/bin/sh\necho not a binary\n" * 100)
    with pytest.raises(UiAssetsError, match="not an ELF executable"):
        ensure_assets(garbage, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/index.html"))


def test_an_elf_without_the_ui_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(UiAssetsError, match="no embedded UI file table found"):
        ensure_assets(Path(sys.executable).resolve(), tmp_path / "cache")


def test_big_endian_and_32_bit_elves_are_refused() -> None:
    elf = bytearray(synthetic_elf(ui_entries()))
    elf[4] = 1  # ELFCLASS32
    with pytest.raises(UiAssetsError, match="little-endian 64-bit"):
        read_embedded(bytes(elf))


def test_a_truncated_table_is_refused() -> None:
    with pytest.raises(UiAssetsError, match="incomplete: 3 files under _app/"):
        read_embedded(synthetic_elf(ui_entries(3)))


def test_unsafe_names_are_refused() -> None:
    entries = [*ui_entries(), ("assets/local/../../evil", b"x")]
    with pytest.raises(UiAssetsError, match="unsafe embedded file name"):
        read_embedded(synthetic_elf(entries))


def test_a_missing_binary_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> object:
        raise importlib.metadata.PackageNotFoundError(name)

    # the modules assets.py imports: the same objects as these
    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(UiAssetsError, match=r"not installed \(pip install 'tempyral\[ui\]'"):
        ensure_assets(root=tmp_path / "cache")
