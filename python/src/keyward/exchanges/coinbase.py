"""Coinbase Advanced Trade with CDP API keys: a JWT for one request.

Coinbase's "API key authentication" builds a JWT signed ES256 (ECDSA P-256) or EdDSA
(Ed25519): header ``alg``, ``kid`` (the API key name, ``organizations/{org}/apiKeys/{id}``),
``nonce``, ``typ: JWT``; claims ``sub`` (the key name), ``iss: "cdp"``, ``nbf`` (now, seconds),
``exp`` (``nbf`` + 120) and ``uri``, ``"METHOD host/path"`` without the query. Send it as
``Authorization: Bearer <jwt>``. The daemon signs ``base64url(header).base64url(claims)``
(RFC 7515 section 5.1), which its ``coinbase-jwt`` format parses::

    from keyward.exchanges import coinbase

    token = coinbase.jwt(client, "coinbase-main", "GET", "api.coinbase.com",
                         "/api/v3/brokerage/accounts")
"""

import base64
import json
import re
import secrets
import time
from typing import Optional

from ..aio import AsyncClient
from ..client import Client
from ..protocol import Scheme
from ._common import Helper, Info, Sign, api_key_of, check_path, method_of, run, run_async

__all__ = ["jwt", "jwt_async", "ws_jwt", "ws_jwt_async", "signing_input", "uri", "LIFETIME"]

#: How long a token is valid, in seconds: Coinbase's own tools use 120.
LIFETIME = 120

_ALGS = {Scheme.ECDSA_P256_SHA256: "ES256", Scheme.ED25519: "EdDSA"}
_HOST = re.compile(r"[a-z0-9.:\-]+\Z")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def uri(method: str, host: str, path: str) -> str:
    """``"METHOD host/path"``, the host lower case, the path strict and without a query."""
    if not _HOST.match(host):
        raise ValueError(f"the host {host!r} must be a lower-case host name, e.g. api.coinbase.com")
    check_path(path)
    return f"{method_of(method)} {host}{path}"


def signing_input(alg: str, key_name: str, nonce: str, nbf: int, uri: Optional[str]) -> str:
    """``base64url(header).base64url(claims)``, members in the order Coinbase writes them."""
    header = {"alg": alg, "kid": key_name, "nonce": nonce, "typ": "JWT"}
    claims = {"sub": key_name, "iss": "cdp", "nbf": int(nbf), "exp": int(nbf) + LIFETIME}
    if uri is not None:
        claims["uri"] = uri
    return _b64url(_json(header)) + "." + _b64url(_json(claims))


def _jwt(
    key: str, target: Optional[str], api_key: Optional[str], now: Optional[int]
) -> "Helper[str]":
    info = yield Info(key)
    alg = _ALGS.get(info.scheme)
    if alg is None:
        raise ValueError(
            f"key {key!r} is {info.scheme}; a Coinbase JWT needs an ecdsa-p256-sha256 or "
            "ed25519 key"
        )
    nbf = int(time.time()) if now is None else int(now)
    unsigned = signing_input(alg, api_key_of(info, api_key), secrets.token_hex(16), nbf, target)
    signature = yield Sign(key, unsigned.encode("ascii"))
    return unsigned + "." + _b64url(signature)


def jwt(
    client: Client,
    key: str,
    method: str,
    host: str,
    path: str,
    *,
    api_key: Optional[str] = None,
    now: Optional[int] = None,
) -> str:
    """A JWT for one REST request. ``api_key`` (the CDP key name) defaults to the key's stored
    API key id, ``now`` (seconds) to the clock."""
    return run(client, _jwt(key, uri(method, host, path), api_key, now))


async def jwt_async(
    client: AsyncClient,
    key: str,
    method: str,
    host: str,
    path: str,
    *,
    api_key: Optional[str] = None,
    now: Optional[int] = None,
) -> str:
    """:func:`jwt` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _jwt(key, uri(method, host, path), api_key, now))


def ws_jwt(
    client: Client, key: str, *, api_key: Optional[str] = None, now: Optional[int] = None
) -> str:
    """A JWT without a ``uri`` claim, for Coinbase's websocket feeds."""
    return run(client, _jwt(key, None, api_key, now))


async def ws_jwt_async(
    client: AsyncClient, key: str, *, api_key: Optional[str] = None, now: Optional[int] = None
) -> str:
    """:func:`ws_jwt` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _jwt(key, None, api_key, now))
