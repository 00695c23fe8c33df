"""The Web UI's start-dev flags: where it listens, the path it is served under, the codec endpoint it is given."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UiOptions:
    # --ui-ip: None = the same as --ip, as the reference.
    ip: str | None = None
    # --ui-public-path: "" = served at /; else "/x" (no trailing slash), everything under it.
    public_path: str = ""
    # --ui-codec-endpoint: the remote codec the UI's browser code calls to decode payloads ("" = none).
    codec_endpoint: str = ""


def normalize_public_path(value: str) -> str:
    """ "/x/", "x" and "/x" all mean "/x"; "/" and "" mean the root, as the reference's UI server has it."""
    stripped = value.strip().strip("/")
    return f"/{stripped}" if stripped else ""
