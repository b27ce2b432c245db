"""OKX v5 REST: the ``OK-ACCESS-*`` headers.

OKX signs ``timestamp + method + requestPath + body`` with HMAC-SHA256 and sends it base64;
the timestamp is ISO 8601 with milliseconds (``2020-12-08T09:08:57.715Z``) and GET parameters
belong to the request path (OKX API v5, REST Authentication). The daemon's ``okx`` format
parses exactly that string. ``OK-ACCESS-PASSPHRASE`` is the passphrase chosen with the API
key, sent as is::

    from keyward.exchanges import okx

    headers = okx.headers(client, "okx-main", "GET", "/api/v5/account/balance", "ccy=BTC",
                          passphrase=OKX_PASSPHRASE)
"""

import datetime
from typing import Dict, Optional

from ..aio import AsyncClient
from ..client import Client
from ._common import Helper, now_ms, prefixed_headers, prefixed_string, run, run_async

__all__ = ["headers", "headers_async", "signing_string", "iso_timestamp"]

_NAMES = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")


def iso_timestamp(timestamp_ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC) for milliseconds since the epoch."""
    seconds, millis = divmod(int(timestamp_ms), 1000)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def signing_string(timestamp_ms: int, method: str, path: str, query: str = "", body: str = "") -> str:
    """What OKX signs for a request at ``timestamp_ms``."""
    return prefixed_string(iso_timestamp(timestamp_ms), method, path, query, body)


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
    stamp = iso_timestamp(now_ms() if timestamp is None else timestamp)
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
    """Signs a request with ``key`` and returns ``OK-ACCESS-KEY``, ``OK-ACCESS-SIGN``,
    ``OK-ACCESS-TIMESTAMP`` and ``OK-ACCESS-PASSPHRASE``. ``query`` is form-encoded as sent
    (no ``?``), ``body`` the JSON exactly as sent; ``api_key`` defaults to the key's stored API
    key id, ``timestamp`` (ms) to now."""
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
