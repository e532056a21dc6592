"""Access tokens signed by the identity service with an asymmetric key (ES256, ``kid``), verified by every
service against the identity's published keys (JWKS). No service holds a secret that can mint a token.

- :class:`KeyRing`: keys in memory. The identity service fills it from its key store (and signs with it);
  in the embedded mode every service in the process verifies against the same ring.
- :class:`JwksKeys`: the distributed mode: the identity's ``/.well-known/jwks.json`` over HTTP, cached,
  fetched again on an unknown ``kid`` at most once per ``min_refetch_seconds``.
- :class:`TokenVerifier`: header, signature, ``iss``/``aud``/``exp``, then the claims through one model
  (:class:`Claims`): any malformed shape is a 401, never a 500. Verified tokens are remembered until they
  expire, so a phone sending the same token all day costs one dict look-up per request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
_ROLES = frozenset({"resident", "grid_worker", "rider", "merchant", "staff", "admin"})
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.*")


def _b64url(n: int, length: int = 32) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One EC P-256 key. ``private`` is None for a key known only by its public half."""

    kid: str
    public: ec.EllipticCurvePublicKey
    private: ec.EllipticCurvePrivateKey | None = None
    created_at: float = 0.0
    retire_at: float | None = None  # no longer published (nor accepted) after this

    @classmethod
    def generate(cls, kid: str | None = None, *, now: float | None = None) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        created = time.time() if now is None else now
        return cls(
            kid=kid or time.strftime("%Y%m%dT%H%M%S", time.gmtime(created)) + "-" + _rand(6),
            public=private.public_key(),
            private=private,
            created_at=created,
        )

    def private_pem(self) -> str:
        assert self.private is not None
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @classmethod
    def from_private_pem(
        cls, kid: str, pem: str, *, created_at: float = 0.0, retire_at: float | None = None
    ) -> SigningKey:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        return cls(kid=kid, public=private.public_key(), private=private, created_at=created_at, retire_at=retire_at)

    def jwk(self) -> dict[str, str]:
        numbers = self.public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x),
            "y": _b64url(numbers.y),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def live(self, now: float) -> bool:
        return self.retire_at is None or now < self.retire_at


def _rand(n: int) -> str:
    import secrets

    return secrets.token_hex(n // 2 + 1)[:n]


class KeySource(Protocol):
    def cached(self, kid: str) -> Any | None:
        """The public key for ``kid`` if already known (no I/O)."""

    async def fetch(self, kid: str) -> Any | None:
        """Look again (bounded in rate) for a key not known yet."""


class KeyRing:
    """The identity's keys in memory. Every live key verifies. The newest live key with a private half that has
    been published for ``sign_after_seconds`` signs (the newest one at all when none has: a first key).

    ``sign_after_seconds`` is why a rotation never shows a service a token it cannot check: a service that read
    the JWKS just before the new key appeared may read it again only ``min_refetch_seconds`` later, so the new
    key signs once every identity replica publishes it (``key_reload_seconds``) and every service may fetch
    again; until then the retiring key goes on signing.

    ``reload`` (set by the identity service) reads the key store again: called when a token names an unknown
    ``kid`` (a key rotated by another replica or by ``minsheng keys rotate``), at most every
    ``min_reload_seconds``.
    """

    def __init__(
        self, keys: Iterable[SigningKey] = (), *, min_reload_seconds: float = 5.0, sign_after_seconds: float = 0.0
    ) -> None:
        self._keys: dict[str, SigningKey] = {}
        self.reload: Callable[[], Awaitable[None]] | None = None
        self.min_reload_seconds = min_reload_seconds
        self.sign_after_seconds = sign_after_seconds
        self._last_reload = 0.0
        self.replace(keys)

    def replace(self, keys: Iterable[SigningKey]) -> None:
        self._keys = {k.kid: k for k in keys}

    @classmethod
    def ephemeral(cls) -> KeyRing:
        """One fresh key held only in memory (tests that run a service without the identity service)."""
        return cls([SigningKey.generate()])

    @property
    def signer(self) -> SigningKey | None:
        now = time.time()
        signers = [k for k in self._keys.values() if k.private is not None and k.live(now)]
        published = [k for k in signers if k.created_at <= now - self.sign_after_seconds]
        return max(published or signers, key=lambda k: k.created_at, default=None)

    @property
    def keys(self) -> Sequence[SigningKey]:
        return tuple(self._keys.values())

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.signer
        if key is None or key.private is None:
            raise RuntimeError("no signing key loaded (is the identity service running?)")
        return jwt.encode(dict(claims), key.private, algorithm=ALGORITHM, headers={"kid": key.kid})

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        now = time.time()
        return {"keys": [k.jwk() for k in sorted(self._keys.values(), key=lambda k: k.created_at) if k.live(now)]}

    def cached(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is None or not key.live(time.time()):
            return None
        return key.public

    async def fetch(self, kid: str) -> Any | None:
        now = time.monotonic()
        if self.reload is not None and now - self._last_reload >= self.min_reload_seconds:
            self._last_reload = now
            await self.reload()
        return self.cached(kid)


class JwksKeys:
    """The identity service's JWKS over HTTP: cached for ``cache_seconds``; an unknown ``kid`` fetches it
    again, at most once per ``min_refetch_seconds`` (a stream of forged kids cannot hammer identity)."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 600.0,
        min_refetch_seconds: float = 30.0,
        timeout: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._timeout = timeout
        self._transport = transport
        self._keys: dict[str, Any] = {}
        self._fetched_at = -1e18
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.unavailable = False  # the last fetch failed: a token we cannot check is not a bad token

    def cached(self, kid: str) -> Any | None:
        if time.monotonic() - self._fetched_at > self.cache_seconds:
            return None  # stale: fetch() reads the set again (the verified-token cache keeps requests cheap)
        return self._keys.get(kid)

    async def fetch(self, kid: str) -> Any | None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age > self.cache_seconds
            if kid in self._keys and not stale:
                return self._keys[kid]
            if age >= self.min_refetch_seconds or stale:
                await self._load()
            return self._keys.get(kid)

    async def _load(self) -> None:
        self._fetched_at = time.monotonic()  # also on failure: bounded retries
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)
            self.unavailable = True
            # try again soon (not at once: an identity outage must not turn into a request storm)
            self._fetched_at = time.monotonic() - self.min_refetch_seconds + min(2.0, self.min_refetch_seconds)
            return
        self.unavailable = False
        keys: dict[str, Any] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                if entry.get("alg", ALGORITHM) != ALGORITHM or entry.get("kty") != "EC":
                    continue
                keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
            except (jwt.PyJWTError, KeyError, TypeError, ValueError, AttributeError):
                log.warning("JWKS from %s: skipped a malformed key", self.url)
        self._keys = keys


class Claims(BaseModel):
    """The claims of an access token, parsed strictly: a wrong shape anywhere is an invalid token."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: StrictStr = Field(min_length=1, max_length=200)
    roles: list[StrictStr] = Field(default_factory=list, max_length=16)
    scope: StrictStr = Field(default="", max_length=4000)
    sid: StrictStr | None = Field(default=None, max_length=100)
    amr: list[StrictStr] = Field(default_factory=list, max_length=8)
    name: StrictStr | None = Field(default=None, max_length=200)
    iss: StrictStr
    aud: StrictStr | list[StrictStr]
    exp: StrictInt
    iat: StrictInt | None = None

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = [r for r in roles if r not in _ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r}")
        return roles

    @field_validator("scope")
    @classmethod
    def _scope_words(cls, scope: str) -> str:
        if any(c not in _SCOPE_CHARS and c != " " for c in scope):
            raise ValueError("a scope is words of [A-Za-z0-9:_-.*] separated by single spaces")
        return scope

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())


class InvalidToken(Exception):
    pass


class KeysUnavailable(Exception):
    """The identity's keys cannot be read right now (the client should retry, not sign in again)."""


class TokenVerifier:
    """Verifies a bearer token against ``keys``; remembers what ``principal_of`` made of a verified token
    (bounded) until it expires, so a cached token costs one dict look-up and a clock read."""

    MAX_CACHED = 10_000

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
        principal_of: Callable[[Claims], Any] = lambda claims: claims,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.principal_of = principal_of
        self._verified: dict[str, tuple[Any, float]] = {}

    async def verify(self, token: str) -> Any:
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached[1]:
                return cached[0]
            del self._verified[token]
            raise InvalidToken("Signature has expired")
        claims = await self.claims(token)
        principal = self.principal_of(claims)
        if len(self._verified) >= self.MAX_CACHED:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = (principal, float(claims.exp + self.leeway))
        return principal

    def forget(self) -> None:
        self._verified.clear()

    async def claims(self, token: str) -> Claims:
        """Verify afresh (no cache)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted (only {ALGORITHM})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 100:
            raise InvalidToken("the token names no key (kid)")
        key = self.keys.cached(kid) or await self.keys.fetch(kid)
        if key is None:
            if getattr(self.keys, "unavailable", False):
                raise KeysUnavailable("the identity service's keys cannot be fetched")
            raise InvalidToken(f"unknown signing key {kid!r}")
        try:
            raw = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["sub", "exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        except (TypeError, ValueError) as exc:  # pragma: no cover - odd payloads PyJWT does not wrap
            raise InvalidToken("malformed token") from exc
        try:
            return Claims.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidToken(f"malformed claim {where!r}: {first.get('msg', '')}") from exc


def access_claims(
    *,
    sub: str,
    roles: Iterable[str],
    scopes: Iterable[str],
    issuer: str,
    audience: str,
    ttl_seconds: int,
    sid: str | None = None,
    amr: Sequence[str] = (),
    name: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": sorted(set(roles)),
        "scope": " ".join(dict.fromkeys(scopes)),
        "amr": list(amr),
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if sid:
        claims["sid"] = sid
    if name:
        claims["name"] = name
    return claims


def jwks_json(ring: KeyRing) -> str:
    return json.dumps(ring.jwks())
