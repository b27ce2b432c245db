"""KuCoin REST: the ``KC-API-*`` headers.

KuCoin signs ``timestamp + method + endpoint + body`` with HMAC-SHA256, base64, the timestamp
in milliseconds and the query part of the endpoint for GET and DELETE (KuCoin API, Signing a
Message). The daemon's ``kucoin`` format parses exactly that string.

Keys of version 2 and 3 send ``KC-API-PASSPHRASE`` as base64 of HMAC-SHA256 of the passphrase
under the API secret. keyward keeps the passphrase sealed with the key (``keyward import
--api-passphrase-file``, ``keyward passphrase``) and signs it on request; by default
(``passphrase=None``) the helper asks the daemon for that value, so the bot's config holds
neither the passphrase nor its signature (docs/EXCHANGES.md)::

    from keyward.exchanges import kucoin

    headers = kucoin.headers(client, "kucoin-main", "POST", "/api/v1/orders", body=order_json)

A ``passphrase`` string is sent as it is (a value the bot signed itself, as before).
"""

import base64
from typing import Dict, Optional

from ..aio import AsyncClient
from ..client import Client
from ._common import Helper, now_ms, prefixed_headers, prefixed_string, run, run_async

__all__ = ["headers", "headers_async", "signed_passphrase", "signed_passphrase_async", "signing_string"]

_NAMES = ("KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE")


def signing_string(timestamp_ms: int, method: str, path: str, query: str = "", body: str = "") -> str:
    """What KuCoin signs for a request at ``timestamp_ms``."""
    return prefixed_string(str(int(timestamp_ms)), method, path, query, body)


def signed_passphrase(client: Client, key: str) -> str:
    """The ``KC-API-PASSPHRASE`` value of the passphrase stored with ``key``: base64 of the
    daemon's HMAC-SHA256 of it under the key's secret."""
    return base64.b64encode(client.sign_passphrase(key)).decode("ascii")


async def signed_passphrase_async(client: AsyncClient, key: str) -> str:
    """:func:`signed_passphrase` on an :class:`~keyward.AsyncClient`."""
    return base64.b64encode(await client.sign_passphrase(key)).decode("ascii")


def _headers(
    key: str,
    method: str,
    path: str,
    query: str,
    body: str,
    passphrase: Optional[str],
    key_version: int,
    api_key: Optional[str],
    timestamp: Optional[int],
) -> "Helper[Dict[str, str]]":
    stamp = str(now_ms() if timestamp is None else int(timestamp))
    extra = {"KC-API-KEY-VERSION": str(int(key_version))}
    return prefixed_headers(
        key, _NAMES, stamp, method, path, query, body, passphrase, api_key, extra
    )


def headers(
    client: Client,
    key: str,
    method: str,
    path: str,
    query: str = "",
    body: str = "",
    *,
    passphrase: Optional[str] = None,
    key_version: int = 2,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """Signs a request with ``key`` and returns ``KC-API-KEY``, ``KC-API-SIGN``,
    ``KC-API-TIMESTAMP``, ``KC-API-PASSPHRASE`` and ``KC-API-KEY-VERSION``.
    ``KC-API-PASSPHRASE`` is the daemon's signature of the passphrase stored with the key
    (``passphrase=None``, the default; one more round trip) or ``passphrase`` as given;
    other arguments as for :func:`keyward.exchanges.okx.headers`."""
    helper = _headers(key, method, path, query, body, passphrase, key_version, api_key, timestamp)
    return run(client, helper)


async def headers_async(
    client: AsyncClient,
    key: str,
    method: str,
    path: str,
    query: str = "",
    body: str = "",
    *,
    passphrase: Optional[str] = None,
    key_version: int = 2,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """:func:`headers` on an :class:`~keyward.AsyncClient`."""
    helper = _headers(key, method, path, query, body, passphrase, key_version, api_key, timestamp)
    return await run_async(client, helper)
