"""Token verification in every service: only ES256 tokens signed by the identity's keys, for our issuer and
audience, unexpired, with well-shaped claims (issue 13 item 4: any odd shape is a 401 problem, never a 500)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from minsheng.platform.auth import make_verifier, mint_token
from minsheng.platform.errors import PROBLEM_JSON
from minsheng.platform.tokens import JwksKeys, KeyRing, SigningKey
from minsheng.settings import Settings
from services.identity import passwords
from tests.support.client import System

# One authenticated endpoint per service.
PROTECTED = ["/identity/accounts", "/visits/residents", "/issues/issues", "/points/riders", "/canteen/diners"]
OLD_SECRET = "minsheng-embedded-dev-secret-change-me"  # the HS256 secret every service used to hold


def _claims(system: System, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "staff-1",
        "roles": ["admin"],
        "scope": "*",
        "iss": system.settings.jwt_issuer,
        "aud": system.settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(system: System, claims: dict[str, Any], **headers: Any) -> str:
    ring: KeyRing = system.app.state.keyring
    assert ring.signer is not None and ring.signer.private is not None
    return jwt.encode(claims, ring.signer.private, algorithm="ES256", headers={"kid": ring.signer.kid, **headers})


def _other_key() -> Any:
    key = SigningKey.generate().private
    assert key is not None
    return key


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _refused_everywhere(system: System, token: str, what: str) -> None:
    for path in PROTECTED:
        r = await system.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (what, path, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON and r.json()["code"] == "invalid_token", (what, path)


async def test_a_genuine_token_works_in_every_service(system: System) -> None:
    token = _signed(system, _claims(system))
    for path in PROTECTED:
        r = await system.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (path, r.text)


async def test_hs256_none_and_algorithm_confusion_are_refused_by_every_service(system: System) -> None:
    claims = _claims(system)
    ring: KeyRing = system.app.state.keyring
    assert ring.signer is not None and ring.signer.private is not None
    public_pem = ring.signer.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = {
        "HS256 with the old shared secret": jwt.encode(claims, OLD_SECRET, algorithm="HS256"),
        "HS256 keyed with the public key": _hs256_raw(claims, public_pem, ring.signer.kid),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': ring.signer.kid})}.{_b64(claims)}.",
        "ES256 by another key under our kid": jwt.encode(
            claims, _other_key(), algorithm="ES256", headers={"kid": ring.signer.kid}
        ),
        "unknown kid": jwt.encode(claims, _other_key(), algorithm="ES256", headers={"kid": "nope"}),
        "no kid": jwt.encode(claims, ring.signer.private, algorithm="ES256"),
        "garbage": "not.a.token",
    }
    for what, token in forged.items():
        await _refused_everywhere(system, token, what)


def _hs256_raw(claims: dict[str, Any], key: bytes, kid: str) -> str:
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"{signing_input}.{sig.decode()}"


async def test_expired_foreign_issuer_and_foreign_audience_tokens_are_refused(system: System) -> None:
    now = int(time.time())
    cases = {
        "expired": _claims(system, iat=now - 4000, exp=now - 3000),
        "foreign issuer": _claims(system, iss="https://evil.example"),
        "foreign audience": _claims(system, aud="another-app"),
        "no audience": _claims(system, aud=None),
        "no expiry": _claims(system, exp=None),
    }
    for what, claims in cases.items():
        await _refused_everywhere(system, _signed(system, claims), what)


@pytest.mark.parametrize(
    "changes",
    [
        {"scope": ["community:yunxing"]},  # identity providers do send arrays
        {"roles": 7},
        {"roles": "admin"},
        {"roles": ["emperor"]},
        {"roles": [1]},
        {"sub": 12345},
        {"sub": ""},
        {"exp": "tomorrow"},
        {"scope": "community:x\t*"},
        {"name": {"a": 1}},
        {"amr": "pwd"},
        {"sid": 5},
    ],
    ids=lambda c: json.dumps(c),
)
async def test_oddly_shaped_claims_answer_401_not_500(system: System, changes: dict[str, Any]) -> None:
    token = _signed(system, _claims(system, **changes))
    r = await system.client.get("/issues/issues", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM_JSON and r.json()["code"] == "invalid_token"


async def test_jwks_and_discovery(system: System) -> None:
    jwks = (await system.client.get("/identity/.well-known/jwks.json")).json()
    ring: KeyRing = system.app.state.keyring
    assert ring.signer is not None
    assert [k["kid"] for k in jwks["keys"]] == [ring.signer.kid]
    key = jwks["keys"][0]
    assert key["alg"] == "ES256" and key["kty"] == "EC" and "d" not in key
    doc = (await system.client.get("/identity/.well-known/openid-configuration")).json()
    assert doc["issuer"] == system.settings.jwt_issuer and doc["jwks_uri"].endswith("/identity/.well-known/jwks.json")
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]


def _jwks_of(ring: KeyRing, *, min_refetch_seconds: float) -> tuple[JwksKeys, list[str]]:
    """A service's JWKS client reading ``ring`` over HTTP, and the list of the reads it made."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, json=ring.jwks())

    url = "http://identity/identity/.well-known/jwks.json"
    return JwksKeys(url, min_refetch_seconds=min_refetch_seconds, transport=httpx.MockTransport(handler)), calls


async def test_the_jwks_client_caches_and_refetches_an_unknown_kid_at_a_bounded_rate() -> None:
    ring = KeyRing.ephemeral()
    keys, calls = _jwks_of(ring, min_refetch_seconds=60)
    settings = Settings(mode="embedded")
    verifier = make_verifier(keys, settings)
    first = mint_token(ring, settings, "a", ["rider"])
    assert (await verifier.verify(first)).sub == "a"
    assert len(calls) == 1
    assert (await verifier.claims(first)).sub == "a"  # a second verification uses the cached set
    assert len(calls) == 1

    old = ring.signer
    ring.replace([*ring.keys, SigningKey.generate()])  # rotated: a new kid signs (embedded: at once)
    assert ring.signer is not old
    with pytest.raises(Exception, match="unknown signing key"):
        await verifier.verify(mint_token(ring, settings, "b", ["rider"]))  # refetch not yet allowed
    keys.min_refetch_seconds = 0
    assert (await verifier.verify(mint_token(ring, settings, "c", ["rider"]))).sub == "c"
    assert len(calls) == 2
    for _ in range(5):  # forged kids cannot make it fetch more than once per interval
        keys.min_refetch_seconds = 60
        with pytest.raises(Exception, match="unknown signing key"):
            await verifier.verify(jwt.encode({"sub": "x"}, _other_key(), algorithm="ES256", headers={"kid": "forged"}))
    assert len(calls) == 2


async def test_a_rotated_key_signs_only_once_every_service_may_have_read_it() -> None:
    """The race above, as a rotation meets it: a service read the JWKS just before the new key appeared and may
    not read it again for ``min_refetch_seconds``. The ring publishes the new key at once but goes on signing
    with the retiring one for ``sign_after_seconds``, so the service checks every token from what it read, and
    by the time the new key signs the service may fetch again."""
    ring = KeyRing([SigningKey.generate(now=time.time() - 3600)], sign_after_seconds=90)
    keys, calls = _jwks_of(ring, min_refetch_seconds=60)
    settings = Settings(mode="embedded")
    verifier = make_verifier(keys, settings)
    assert (await verifier.verify(mint_token(ring, settings, "a", ["rider"]))).sub == "a"  # the service reads
    old = ring.signer
    assert old is not None

    new = SigningKey.generate()  # `minsheng keys rotate`: the old key retires later, the new one is published
    ring.replace([dataclasses.replace(old, retire_at=time.time() + 1290), new])
    assert [k["kid"] for k in ring.jwks()["keys"]] == [old.kid, new.kid]
    assert ring.signer is not None and ring.signer.kid == old.kid
    assert (await verifier.verify(mint_token(ring, settings, "b", ["rider"]))).sub == "b"
    assert len(calls) == 1  # checked from what the service read before the rotation

    ring.replace(
        [
            dataclasses.replace(old, retire_at=time.time() + 1200),
            dataclasses.replace(new, created_at=new.created_at - 90),
        ]
    )
    keys._fetched_at -= 90  # 90 s on: the service's read is that old too
    assert ring.signer is not None and ring.signer.kid == new.kid
    assert (await verifier.verify(mint_token(ring, settings, "c", ["rider"]))).sub == "c"
    assert len(calls) == 2  # the unknown kid made it read again, which it was allowed to

    assert KeyRing([first := SigningKey.generate()], sign_after_seconds=90).signer == first  # a first key signs


async def test_an_unreachable_jwks_answers_503_not_401() -> None:
    from minsheng.platform.auth import decode_token
    from minsheng.platform.errors import Problem

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("identity is down")

    settings = Settings(mode="embedded")
    keys = JwksKeys("http://identity/jwks.json", transport=httpx.MockTransport(down))
    with pytest.raises(Problem) as problem:
        await decode_token(make_verifier(keys, settings), mint_token(KeyRing.ephemeral(), settings, "a", ["rider"]))
    assert problem.value.status == 503 and problem.value.headers == {"Retry-After": "2"}


def test_totp_matches_the_rfc_6238_vectors() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    key = b"12345678901234567890"
    # RFC 6238 appendix B (SHA-1, 8 digits), and the same counters at 6 digits (the last 6 of each).
    for t, expected in ((59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"), (2000000000, "69279037")):
        assert passwords.hotp(key, t // 30, digits=8) == expected
        assert passwords.totp(secret, at=t) == expected[-6:]
    assert passwords.verify_totp(secret, "287082", 0, at=59) == 1
    assert passwords.verify_totp(secret, "287082", 1, at=59) is None  # a step is used once
