"""Bitget REST: the ``ACCESS-*`` headers.

Bitget signs ``timestamp + METHOD + requestPath + "?" + queryString + body`` (the ``?`` only
with a query), in milliseconds, and sends the signature base64: HMAC-SHA256 for secret keys,
RSA for RSA keys (Bitget API, Quick Start, Signature). The daemon's ``bitget`` format parses
exactly that string. ``ACCESS-PASSPHRASE`` is the passphrase chosen with the API key::

    from keyward.exchanges import bitget

    headers = bitget.headers(client, "bitget-main", "GET", "/api/v2/spot/account/assets",
                             passphrase=BITGET_PASSPHRASE)
"""

from typing import Dict, Optional

from ..aio import AsyncClient
from ..client import Client
from ._common import Helper, now_ms, prefixed_headers, prefixed_string, run, run_async

__all__ = ["headers", "headers_async", "signing_string"]

_NAMES = ("ACCESS-KEY", "ACCESS-SIGN", "ACCESS-TIMESTAMP", "ACCESS-PASSPHRASE")


def signing_string(timestamp_ms: int, method: str, path: str, query: str = "", body: str = "") -> str:
    """What Bitget signs for a request at ``timestamp_ms``."""
    return prefixed_string(str(int(timestamp_ms)), method, path, query, body)


def _headers(
    key: str,
    method: str,
    path: str,
    query: str,
    body: str,
    passphrase: str,
    api_key: Optional[str],
    timestamp: Optional[int],
) -> "Helper[Dict[str, str]]":
    stamp = str(now_ms() if timestamp is None else int(timestamp))
    return prefixed_headers(key, _NAMES, stamp, method, path, query, body, passphrase, api_key)


def headers(
    client: Client,
    key: str,
    method: str,
    path: str,
    query: str = "",
    body: str = "",
    *,
    passphrase: str,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """Signs a request with ``key`` and returns ``ACCESS-KEY``, ``ACCESS-SIGN``,
    ``ACCESS-TIMESTAMP`` and ``ACCESS-PASSPHRASE``; arguments as for
    :func:`keyward.exchanges.okx.headers`."""
    helper = _headers(key, method, path, query, body, passphrase, api_key, timestamp)
    return run(client, helper)


async def headers_async(
    client: AsyncClient,
    key: str,
    method: str,
    path: str,
    query: str = "",
    body: str = "",
    *,
    passphrase: str,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """:func:`headers` on an :class:`~keyward.AsyncClient`."""
    helper = _headers(key, method, path, query, body, passphrase, api_key, timestamp)
    return await run_async(client, helper)
