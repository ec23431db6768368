"""Access tokens. Algorithms are pinned per token kind; `none` and algorithm confusion are rejected.

Staff and terminal access tokens: HS256 with the deployment's secret. Terminal client assertions:
EdDSA, verified with the public key the terminal enrolled.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from voucher_api.services.errors import Unauthorized

ACCESS_ALGORITHM = "HS256"
ASSERTION_ALGORITHM = "EdDSA"
AUDIENCE = "voucher-api"
ASSERTION_AUDIENCE = "voucher-api/terminal-token"
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff member or a terminal."""

    kind: str  # staff | terminal
    id: int
    municipality_id: int
    roles: frozenset[str]
    operator_id: int | None = None
    vehicle_id: int | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}"


def issue_access_token(principal: Principal, *, secret: str, now: datetime, ttl: timedelta) -> str:
    claims: dict[str, Any] = {
        "sub": principal.actor,
        "typ": principal.kind,
        "mun": principal.municipality_id,
        "roles": sorted(principal.roles),
        "name": principal.name,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    if principal.operator_id is not None:
        claims["op"] = principal.operator_id
    if principal.vehicle_id is not None:
        claims["veh"] = principal.vehicle_id
    return jwt.encode(claims, secret, algorithm=ACCESS_ALGORITHM)


def _verified_access_token(token: str, *, secret: str) -> tuple[Principal, int]:
    """The principal a token names and its expiry (Unix seconds), once signature and audience check out.

    Raises Unauthorized. The expiry is not compared with the time here: callers do that on every use.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ACCESS_ALGORITHM],
            audience=AUDIENCE,
            # Times are compared with the injected clock by the callers, never PyJWT's wall clock: a
            # token from a server whose clock runs a little ahead must not be refused as "not yet valid".
            options={"require": ["exp", "iat", "sub", "aud"], "verify_exp": False, "verify_iat": False},
        )
        kind, _, ident = str(claims["sub"]).partition(":")
        if kind not in ("staff", "terminal") or kind != claims.get("typ"):
            raise Unauthorized("auth.invalid_token")
        principal = Principal(
            kind=kind,
            id=int(ident),
            municipality_id=int(claims["mun"]),
            roles=frozenset(str(r) for r in claims.get("roles", [])),
            operator_id=int(claims["op"]) if "op" in claims else None,
            vehicle_id=int(claims["veh"]) if "veh" in claims else None,
            name=str(claims.get("name", "")),
        )
        return principal, int(claims["exp"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("auth.invalid_token") from exc


def decode_access_token(token: str, *, secret: str, now: datetime) -> Principal:
    """Verify signature, audience and expiry with the pinned algorithm; raises Unauthorized."""
    principal, expires = _verified_access_token(token, secret=secret)
    if expires <= now.timestamp():
        raise Unauthorized("auth.invalid_token")
    return principal


class AccessTokenReader:
    """`decode_access_token` for one secret, remembering the tokens whose signature it has checked.

    A terminal sends the same token with every request for its lifetime, and checking it again gives the
    same answer (the same bytes under the same key), so a token seen before costs a look-up; the expiry
    is still compared with `now` on every use, and a token that failed is never remembered. Build one per
    app; thread-safe; holds at most `capacity` tokens (it forgets them all when full).
    """

    def __init__(self, secret: str, *, capacity: int = 10_000) -> None:
        self._secret = secret
        self._capacity = capacity
        self._verified: dict[str, tuple[Principal, int]] = {}

    def read(self, token: str, *, now: datetime) -> Principal:
        """The token's principal; raises Unauthorized (auth.invalid_token) as `decode_access_token`."""
        known = self._verified.get(token)
        if known is None:
            known = _verified_access_token(token, secret=self._secret)
            if len(self._verified) >= self._capacity:
                self._verified.clear()
            self._verified[token] = known
        principal, expires = known
        if expires <= now.timestamp():
            raise Unauthorized("auth.invalid_token")
        return principal


def assertion_terminal_id(assertion: str) -> int:
    """The terminal an assertion claims to come from (unverified; used only to find its key)."""
    try:
        header = jwt.get_unverified_header(assertion)
        if header.get("alg") != ASSERTION_ALGORITHM:
            raise Unauthorized("terminal.bad_assertion")
        claims = jwt.decode(assertion, options={"verify_signature": False})
        kind, _, ident = str(claims["iss"]).partition(":")
        if kind != "terminal":
            raise Unauthorized("terminal.bad_assertion")
        return int(ident)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("terminal.bad_assertion") from exc


def verify_assertion(
    assertion: str, public_key: Ed25519PublicKey, *, terminal_id: int, now: datetime
) -> None:
    """A terminal's signed client assertion: EdDSA only, right audience, short-lived."""
    try:
        claims = jwt.decode(
            assertion,
            public_key,
            algorithms=[ASSERTION_ALGORITHM],
            audience=ASSERTION_AUDIENCE,
            issuer=f"terminal:{terminal_id}",
            options={"require": ["exp", "iat", "iss", "aud"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("terminal.bad_assertion") from exc
    iat, exp = int(claims["iat"]), int(claims["exp"])
    ts = now.timestamp()
    if exp <= ts or iat > ts + 60 or exp - iat > MAX_ASSERTION_LIFETIME.total_seconds():
        raise Unauthorized("terminal.bad_assertion")
