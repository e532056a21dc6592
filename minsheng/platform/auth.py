"""OAuth2 bearer JWTs with roles and a community/compound scope.

A token's ``scope`` claim lists what the holder may see: ``*`` (the whole district), ``community:<code>``,
``compound:<code>``, or a service-specific scope such as ``canteen:<id>`` or ``department:<code>``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minsheng.platform.errors import Problem
from minsheng.settings import Settings


class Role(StrEnum):
    resident = "resident"
    grid_worker = "grid_worker"
    rider = "rider"
    merchant = "merchant"
    staff = "staff"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[Role]
    scopes: tuple[str, ...] = ()
    name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_admin(self) -> bool:
        return Role.admin in self.roles or "*" in self.scopes

    def scoped_values(self, kind: str) -> set[str]:
        return set(self._scopes_by_kind.get(kind, ()))

    @functools.cached_property
    def _scopes_by_kind(self) -> dict[str, frozenset[str]]:
        by_kind: dict[str, set[str]] = {}
        for scope in self.scopes:
            kind, sep, value = scope.partition(":")
            if sep:
                by_kind.setdefault(kind, set()).add(value)
        return {kind: frozenset(values) for kind, values in by_kind.items()}

    def covers(self, community: str | None = None, compound: str | None = None) -> bool:
        """May this principal act on an object in ``community`` / ``compound``?"""
        if self.is_admin:
            return True
        scopes = self._scopes_by_kind
        if community is not None and community in scopes.get("community", ()):
            return True
        return compound is not None and compound in scopes.get("compound", ())


def mint_token(settings: Settings, sub: str, roles: Iterable[str], scopes: Iterable[str] = (),
               *, name: str | None = None, ttl_seconds: int | None = None) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub, "roles": sorted({Role(r).value for r in roles}), "scope": " ".join(scopes),
        "iss": settings.jwt_issuer, "iat": now, "exp": now + (ttl_seconds or settings.jwt_ttl_seconds),
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    """The principal of a valid token. A phone sends the same token with every request for its whole life, so
    a verified token's principal is kept (bounded, per secret) and only its expiry is checked again."""
    key = (settings.secret, settings.jwt_issuer, token)
    cached = _verified.get(key)
    if cached is not None:
        principal, expires_at = cached
        if time.time() < expires_at:
            return principal
        del _verified[key]
        raise _invalid("Signature has expired")
    principal, expires_at = _verify(settings, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.pop(next(iter(_verified)))  # the oldest entry (dicts keep insertion order)
    _verified[key] = (principal, expires_at)
    return principal


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, settings.secret, algorithms=["HS256"], issuer=settings.jwt_issuer,
                            options={"require": ["sub", "exp"]})
        roles = frozenset(Role(r) for r in claims.get("roles", []))
    except (jwt.PyJWTError, ValueError) as exc:
        raise _invalid(str(exc)) from exc
    scope = claims.get("scope", "")
    principal = Principal(sub=str(claims["sub"]), roles=roles, scopes=tuple(scope.split()) if scope else (),
                          name=claims.get("name"))
    return principal, float(claims["exp"])


def _invalid(detail: str) -> Problem:
    return Problem(401, "invalid_token", "Invalid or expired token", detail,
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


_VERIFIED_MAX = 10_000
_verified: dict[tuple[str, str, str], tuple[Principal, float]] = {}


_bearer = HTTPBearer(auto_error=False, description="A JWT from your identity provider (or `minsheng token`).")


def settings_of(request: Request) -> Settings:
    return request.app.state.runtime.settings  # type: ignore[no-any-return]


async def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if credentials is None:
        raise Problem(401, "unauthenticated", "Authentication required", "Send `Authorization: Bearer <jwt>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    return decode_token(settings_of(request), credentials.credentials)


async def optional_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal | None:
    return decode_token(settings_of(request), credentials.credentials) if credentials else None


def require(*roles: Role) -> Callable[..., object]:
    """A dependency that answers 403 unless the caller holds one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {Role.admin}

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.roles & allowed:
            raise Problem(403, "forbidden_role", "Not allowed for your role",
                          f"Needs one of: {', '.join(sorted(allowed))}.")
        return principal

    return dependency


def ensure_scope(principal: Principal, community: str | None, compound: str | None = None,
                 *, what: str = "object", ident: object = "") -> None:
    """Objects outside the caller's scope answer 404, so their existence does not leak."""
    if not principal.covers(community, compound):
        raise Problem(404, f"{what}_not_found", f"{what.replace('_', ' ').capitalize()} not found",
                      f"No {what.replace('_', ' ')} {ident} (or it is outside your scope).")
