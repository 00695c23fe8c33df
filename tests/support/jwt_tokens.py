"""Signing keys and tokens for authorization tests: RSA and EC key pairs made here, a JWKS file of their public
halves, and tokens minted with PyJWT."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class SigningKey:
    kid: str
    alg: str  # RS256 or ES256
    private: Any

    @staticmethod
    def rsa(kid: str) -> SigningKey:
        return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @staticmethod
    def ec(kid: str) -> SigningKey:
        return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        entry: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        entry.update(kid=self.kid, use="sig", alg=self.alg)
        return entry

    def token(
        self,
        permissions: list[str] | None = None,
        subject: str | None = "tester",
        expires_in_s: float = 3600.0,
        claim: str = "permissions",
        kid: str | None = None,
        **extra: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iat": now, "exp": now + int(expires_in_s), **extra}
        if subject is not None:  # None: a token without one (which the reference refuses)
            payload["sub"] = subject
        if permissions is not None:
            payload[claim] = permissions
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": kid or self.kid})


def write_jwks(path: Path, keys: list[SigningKey]) -> None:
    """Replaced whole (write, then rename): a server re-reading it never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    tmp.replace(path)
