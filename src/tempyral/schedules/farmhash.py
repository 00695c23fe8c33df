"""FarmHash's 32-bit fingerprint (farmhashmk Hash32), which the reference hashes a schedule's nominal time and
jitter seed with: computing the same one gives every action the same jitter as the reference would, and the same
again after a restart."""

from __future__ import annotations

_M32 = 0xFFFFFFFF
_C1 = 0xCC9E2D51
_C2 = 0x1B873593


def _rotr(v: int, shift: int) -> int:
    return ((v >> shift) | (v << (32 - shift))) & _M32


def _fetch(s: bytes, i: int) -> int:
    return int.from_bytes(s[i : i + 4], "little")


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _mur(a: int, h: int) -> int:
    a = (_rotr((a * _C1) & _M32, 17) * _C2) & _M32
    h = _rotr(h ^ a, 19)
    return (h * 5 + 0xE6546B64) & _M32


def _len0to4(s: bytes) -> int:
    b, c = 0, 9
    for byte in s:
        signed = byte - 256 if byte > 127 else byte  # the bytes are added as signed chars
        b = (b * _C1 + signed) & _M32
        c ^= b
    return _fmix(_mur(b, _mur(len(s), c)))


def _len5to12(s: bytes) -> int:
    n = len(s)
    a, b, c = n, n * 5, 9
    d = b
    a = (a + _fetch(s, 0)) & _M32
    b = (b + _fetch(s, n - 4)) & _M32
    c = (c + _fetch(s, (n >> 1) & 4)) & _M32
    return _fmix(_mur(c, _mur(b, _mur(a, d))))


def _len13to24(s: bytes) -> int:
    n = len(s)
    a = _fetch(s, (n >> 1) - 4)
    b = _fetch(s, 4)
    c = _fetch(s, n - 8)
    d = _fetch(s, n >> 1)
    e = _fetch(s, 0)
    f = _fetch(s, n - 4)
    h = (d * _C1 + n) & _M32
    a = (_rotr(a, 12) + f) & _M32
    h = (_mur(c, h) + a) & _M32
    a = (_rotr(a, 3) + c) & _M32
    h = (_mur(e, h) + a) & _M32
    a = (_rotr((a + f) & _M32, 12) + d) & _M32
    h = (_mur(b, h) + a) & _M32
    return _fmix(h)


def fingerprint32(s: bytes) -> int:
    n = len(s)
    if n <= 4:
        return _len0to4(s)
    if n <= 12:
        return _len5to12(s)
    if n <= 24:
        return _len13to24(s)
    h = n
    g = (_C1 * n) & _M32
    f = g
    a0, a1, a2, a3, a4 = ((_rotr((_fetch(s, n - k) * _C1) & _M32, 17) * _C2) & _M32 for k in (4, 8, 16, 12, 20))
    h = (_rotr(h ^ a0, 19) * 5 + 0xE6546B64) & _M32
    h = (_rotr(h ^ a2, 19) * 5 + 0xE6546B64) & _M32
    g = (_rotr(g ^ a1, 19) * 5 + 0xE6546B64) & _M32
    g = (_rotr(g ^ a3, 19) * 5 + 0xE6546B64) & _M32
    f = (_rotr((f + a4) & _M32, 19) + 113) & _M32
    pos = 0
    while n - pos > 20:
        a, b, c, d, e = (_fetch(s, pos + k) for k in (0, 4, 8, 12, 16))
        h = (h + a) & _M32
        g = (g + b) & _M32
        f = (f + c) & _M32
        h = (_mur(d, h) + e) & _M32
        g = (_mur(c, g) + a) & _M32
        f = (_mur((b + e * _C1) & _M32, f) + d) & _M32
        f = (f + g) & _M32
        g = (g + f) & _M32
        pos += 20
    g = (_rotr((_rotr(g, 11) * _C1) & _M32, 17) * _C1) & _M32
    f = (_rotr((_rotr(f, 11) * _C1) & _M32, 17) * _C1) & _M32
    h = (_rotr((h + g) & _M32, 19) * 5 + 0xE6546B64) & _M32
    h = (_rotr(h, 17) * _C1) & _M32
    h = (_rotr((h + f) & _M32, 19) * 5 + 0xE6546B64) & _M32
    return (_rotr(h, 17) * _C1) & _M32
