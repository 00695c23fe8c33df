"""Deciding whether a call may go on: the token of its `authorization` header verified and mapped to claims
(the reference's default JWT claim mapper), then the claims checked against the role the API needs (its default
authorizer).

As the reference's interceptor (common/authorization/interceptor.go): a call without a token has no claims and
is refused unless it is a health check; a token that cannot be verified or read is refused before the authorizer
sees it; every refusal is PERMISSION_DENIED "Request unauthorized." with no reason, so callers learn nothing about
why. The reason goes to the log instead, one line per refusal, throttled.

The server's own calls to its frontend (batch operations) carry a bearer secret the cluster's nodes share
through their database, which grants what `temporal-system:admin` does.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from tempyral.auth.access import HEALTH_CHECK_APIS, Scope, method_access
from tempyral.auth.claims import REQUIRED_ROLE, Claims, Role, claims_from
from tempyral.auth.jwks import KEY_TYPES, KeySet
from tempyral.common.errors import PermissionDenied
from tempyral.common.logs import ThrottledLog
from tempyral.frontend import request_log

log = logging.getLogger(__name__)

REQUEST_UNAUTHORIZED = "Request unauthorized."  # the reference's RequestUnauthorized
INTERNAL_SECRET_KEY = "internal_auth_secret"  # where the nodes of a cluster keep their shared secret
LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class AuthSettings:
    """--auth-* flags; with neither JWKS source, no authorization."""

    jwks_path: str | None = None
    jwks_url: str | None = None
    permissions_claim: str = "permissions"
    jwks_refresh_s: float = 60.0

    @property
    def enabled(self) -> bool:
        return self.jwks_path is not None or self.jwks_url is not None


class Refused(PermissionDenied):
    """The reference's errUnauthorized; `invalid_token` tells the Nexus HTTP API (which answers a token it cannot
    read with UNAUTHENTICATED) from a refusal of valid claims."""

    def __init__(self, invalid_token: bool) -> None:
        super().__init__(REQUEST_UNAUTHORIZED)
        self.invalid_token = invalid_token


class InvalidToken(Exception):
    pass


def _log_refusal(throttle: ThrottledLog, kind: str, api: str, namespace: str, reason: str) -> None:
    """One line per refusal, at most one a LOG_INTERVAL_S per kind; the next says how many were left out."""
    left_out = throttle.due(kind)
    if left_out is None:
        return
    more = f" ({left_out} more refused like it since the last report)" if left_out else ""
    request_log.refused(_method(api), namespace, "PERMISSION_DENIED", reason + more)


class Authorizer:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.keys = KeySet(settings.jwks_path, settings.jwks_url, settings.jwks_refresh_s)
        # Replaced at start by the cluster's shared one; until then a random one nobody knows.
        self._internal_secret = secrets.token_urlsafe(32)
        self._refusals = ThrottledLog(log, LOG_INTERVAL_S)

    async def start(self, internal_secret: str) -> None:
        self._internal_secret = internal_secret
        await self.keys.start()

    async def stop(self) -> None:
        await self.keys.stop()

    @property
    def internal_header(self) -> str:
        """The `authorization` value of the server's own calls."""
        return f"Bearer {self._internal_secret}"

    async def check(self, api: str, namespace: str, authorization: str | None) -> None:
        """Raise Refused unless `authorization` (the header's value, None if absent) may call `api` on
        `namespace` ("" for none)."""
        if api in HEALTH_CHECK_APIS:
            return
        claims: Claims | None = None
        if authorization:
            try:
                claims = await self.claims(authorization)
            except InvalidToken as err:
                _log_refusal(self._refusals, "invalid token", api, namespace, f"invalid token: {err}")
                raise Refused(invalid_token=True) from None
        if not allowed(claims, api, namespace):
            why = "no token" if claims is None else f"subject {claims.subject!r} lacks the role it needs"
            _log_refusal(self._refusals, "denied", api, namespace, why)
            raise Refused(invalid_token=False)

    async def claims(self, authorization: str) -> Claims:
        scheme, sep, token = authorization.partition(" ")
        if not sep:
            raise InvalidToken("unexpected authorization token format")
        if scheme.lower() != "bearer":
            raise InvalidToken("unexpected name in authorization token")
        if hmac.compare_digest(token.encode(), self._internal_secret.encode()):
            return Claims(subject="tempyral", system=Role.ADMIN)
        return claims_from(await self._verified(token), self.settings.permissions_claim)

    async def _verified(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:
            raise InvalidToken(str(err)) from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in KEY_TYPES:
            raise InvalidToken(f"unexpected signing method: {alg}")
        if not isinstance(kid, str):
            raise InvalidToken('malformed token - no "kid" header')
        key = await self.keys.find(kid)
        if key is None or key.kty != KEY_TYPES[alg]:
            raise InvalidToken(f"{'RSA' if alg == 'RS256' else 'ECDSA'} key not found for key ID: {kid}")
        try:
            # Expiry and not-before are checked when present (leeway 0, as the reference); the audience is not
            # (the reference checks it only when an audience is configured, which tempyral has no flag for).
            payload: dict[str, Any] = jwt.decode(token, key.key, algorithms=[alg], options={"verify_aud": False})
        except jwt.InvalidTokenError as err:
            raise InvalidToken(str(err)) from None
        if not isinstance(payload.get("sub"), str):
            raise InvalidToken('unexpected value type of "sub" claim')
        return payload


def allowed(claims: Claims | None, api: str, namespace: str) -> bool:
    """The reference's default authorizer: the role held at the API's scope, compared as a number with the role
    its access needs (the roles are a bitmask: worker+read is still below write)."""
    if api in HEALTH_CHECK_APIS:
        return True
    if claims is None:
        return False
    scope, access = method_access(api)
    if scope is Scope.CLUSTER:
        held = claims.system
    elif scope is Scope.NAMESPACE:
        held = claims.system | claims.namespaces.get(namespace, Role.UNDEFINED)
    else:
        return False
    required = REQUIRED_ROLE.get(access, Role.ADMIN)  # admin, and unknown access, need admin
    return int(held) >= int(required)


def _method(api: str) -> str:
    return api.rsplit("/", 1)[-1]
