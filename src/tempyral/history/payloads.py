"""Payloads the server writes itself (encoded as json/plain, like the reference)."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import message_pb2 as common


def encode_string(value: str) -> common.Payloads:
    return common.Payloads(
        payloads=[common.Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())]
    )
