"""Roles and the claims a token grants, as the reference's default JWT claim mapper reads them.

The permissions claim (`permissions` unless renamed) is a list of "<namespace>:<role>" strings; roles are
read, write, worker and admin (case-insensitive), and the namespace `temporal-system` gives a role over every
namespace and the cluster. A role is a bitmask, and the default authorizer compares it as a number against
the role an API needs (so worker, the lowest bit, is below read and grants nothing by itself).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from tempyral.auth.access import Access

log = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "temporal-system"


class Role(enum.IntFlag):
    UNDEFINED = 0
    WORKER = 1
    READER = 2
    WRITER = 4
    ADMIN = 8


_ROLES = {"read": Role.READER, "write": Role.WRITER, "worker": Role.WORKER, "admin": Role.ADMIN}
REQUIRED_ROLE = {Access.READ: Role.READER, Access.WRITE: Role.WRITER}  # anything else: admin


@dataclass
class Claims:
    subject: str = ""
    system: Role = Role.UNDEFINED
    namespaces: dict[str, Role] = field(default_factory=dict)


def role_of(permission: str) -> Role:
    return _ROLES.get(permission.lower(), Role.UNDEFINED)


def claims_from(payload: dict[str, Any], permissions_claim: str) -> Claims:
    """The claims of a verified token's payload. The caller has checked that `sub` is a string; a permissions
    claim that is not a list grants nothing, and entries that are not "<namespace>:<role>" are skipped."""
    claims = Claims(subject=payload["sub"])
    permissions = payload.get(permissions_claim)
    if not isinstance(permissions, list):
        return claims
    for permission in permissions:
        if not isinstance(permission, str):
            log.warning("ignoring permission that is not a string: %r", permission)
            continue
        namespace, sep, role = permission.partition(":")
        if not sep:
            log.warning("ignoring permission in unexpected format: %r", permission)
            continue
        if namespace == SYSTEM_NAMESPACE:
            claims.system |= role_of(role)
        else:
            claims.namespaces[namespace] = claims.namespaces.get(namespace, Role.UNDEFINED) | role_of(role)
    return claims
