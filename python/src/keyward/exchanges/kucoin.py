"""KuCoin REST: the ``KC-API-*`` headers.

KuCoin signs ``timestamp + method + endpoint + body`` with HMAC-SHA256, base64, the timestamp
in milliseconds and the query part of the endpoint for GET and DELETE (KuCoin API, Signing a
Message). The daemon's ``kucoin`` format parses exactly that string.

Keys of version 2 and 3 send ``KC-API-PASSPHRASE`` as base64 of HMAC-SHA256 of the passphrase
under the API secret: a constant computed once when the key is set up (docs/EXCHANGES.md),
which signs nothing by itself. Pass that value as ``passphrase``::

    from keyward.exchanges import kucoin

    headers = kucoin.headers(client, "kucoin-main", "POST", "/api/v1/orders", body=order_json,
                             passphrase=KUCOIN_SIGNED_PASSPHRASE)
"""

from typing import Dict, Optional

from ..aio import AsyncClient
from ..client import Client
from ._common import Helper, now_ms, prefixed_headers, prefixed_string, run, run_async

__all__ = ["headers", "headers_async", "signing_string"]

_NAMES = ("KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE")


def signing_string(timestamp_ms: int, method: str, path: str, query: str = "", body: str = "") -> str:
    """What KuCoin signs for a request at ``timestamp_ms``."""
    return prefixed_string(str(int(timestamp_ms)), method, path, query, body)


def _headers(
    key: str,
    method: str,
    path: str,
    query: str,
    body: str,
    passphrase: str,
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
    passphrase: str,
    key_version: int = 2,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """Signs a request with ``key`` and returns ``KC-API-KEY``, ``KC-API-SIGN``,
    ``KC-API-TIMESTAMP``, ``KC-API-PASSPHRASE`` (``passphrase`` as given: the signed one for
    version 2 and 3 keys) and ``KC-API-KEY-VERSION``; other arguments as for
    :func:`keyward.exchanges.okx.headers`."""
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
    passphrase: str,
    key_version: int = 2,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """:func:`headers` on an :class:`~keyward.AsyncClient`."""
    helper = _headers(key, method, path, query, body, passphrase, key_version, api_key, timestamp)
    return await run_async(client, helper)
