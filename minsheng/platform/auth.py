"""OAuth2 bearer JWTs with roles and a community/compound scope.

A token's ``scope`` claim lists what the holder may see: ``*`` (the whole district), ``community:<code>``,
``compound:<code>``, or a service-specific scope such as ``canteen:<id>`` or ``department:<code>``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t
from minsheng.platform.tokens import (
    Claims,
    InvalidToken,
    KeyRing,
    KeySource,
    KeysUnavailable,
    TokenVerifier,
    access_claims,
)
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
    sid: str | None = None  # the sign-in session (refresh-token family) the token belongs to
    amr: tuple[str, ...] = ()  # how the holder signed in: wechat, pwd, otp, dev

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


def mint_token(
    ring: KeyRing,
    settings: Settings,
    sub: str,
    roles: Iterable[str],
    scopes: Iterable[str] = (),
    *,
    name: str | None = None,
    ttl_seconds: int | None = None,
    sid: str | None = None,
    amr: Sequence[str] = (),
) -> str:
    """An access token signed with the ring's current key (the identity service, ``minsheng token``, tests)."""
    return ring.sign(
        access_claims(
            sub=sub,
            roles=[Role(r).value for r in roles],
            scopes=scopes,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=ttl_seconds or settings.access_token_ttl_seconds,
            sid=sid,
            amr=amr,
            name=name,
        )
    )


def make_verifier(keys: KeySource, settings: Settings) -> TokenVerifier:
    return TokenVerifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
        principal_of=principal_of,
    )


def principal_of(claims: Claims) -> Principal:
    return Principal(
        sub=claims.sub,
        roles=frozenset(Role(r) for r in claims.roles),
        scopes=claims.scopes,
        name=claims.name,
        sid=claims.sid,
        amr=tuple(claims.amr),
    )


async def decode_token(verifier: TokenVerifier, token: str) -> Principal:
    """The principal of a valid token; 401 problem+json for anything else (bad signature, foreign issuer or
    audience, expired, HS256/none, unknown key, malformed claims)."""
    try:
        return await verifier.verify(token)  # type: ignore[no-any-return]
    except InvalidToken as exc:
        raise _invalid(str(exc)) from exc
    except KeysUnavailable as exc:
        raise Problem(
            503,
            "auth_unavailable",
            "Cannot check your token right now",
            "The identity service's keys are unreachable; retry shortly.",
            headers={"Retry-After": "2"},
        ) from exc


def _invalid(detail: str) -> Problem:
    return Problem(
        401,
        "invalid_token",
        "Invalid or expired token",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from the identity service (`POST "
    "/identity/wechat/login`, `POST /identity/staff/login`; `minsheng token` in development).",
)


def settings_of(request: Request) -> Settings:
    return request.app.state.runtime.settings  # type: ignore[no-any-return]


def verifier_of(request: Request) -> TokenVerifier:
    return request.app.state.runtime.verifier  # type: ignore[no-any-return]


async def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if credentials is None:
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "Send `Authorization: Bearer <jwt>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await decode_token(verifier_of(request), credentials.credentials)


async def optional_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal | None:
    return await decode_token(verifier_of(request), credentials.credentials) if credentials else None


def require(*roles: Role) -> Callable[..., object]:
    """A dependency that answers 403 unless the caller holds one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {Role.admin}

    # It takes the bearer credentials itself rather than depending on ``current_principal``: FastAPI solves
    # every level of a dependency chain on every request. The OpenAPI security requirement is the same.
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        principal = await current_principal(request, credentials)
        if not principal.roles & allowed:
            raise Problem(
                403,
                "forbidden_role",
                "Not allowed for your role",
                _t("Needs one of: {roles}.", roles=", ".join(sorted(allowed))),
            )
        return principal

    return dependency
