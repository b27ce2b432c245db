"""Bybit v5 REST: the ``X-BAPI-*`` headers, for HMAC and RSA keys.

Bybit signs ``timestamp + api_key + recv_window + queryString`` for GET and ``... +
jsonBodyString`` for POST, in milliseconds; the signature is lowercase hex for HMAC keys and
base64 for RSA keys (bybit-exchange/docs, v5/guide.mdx, Authentication). The daemon's
``bybit`` format parses exactly that string and checks the API key in it against the key's
stored API key id::

    from keyward.exchanges import bybit

    body = '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.1"}'
    headers = bybit.headers(client, "bybit-main", "POST", body=body)
"""

import base64
from typing import Dict, Optional

from ..aio import AsyncClient
from ..client import Client
from ._common import (
    Helper,
    Info,
    Sign,
    api_key_of,
    check_form,
    check_json_body,
    method_of,
    now_ms,
    run,
    run_async,
)

__all__ = ["headers", "headers_async", "signing_string", "DEFAULT_RECV_WINDOW"]

#: The receive window Bybit applies when none is sent, in milliseconds.
DEFAULT_RECV_WINDOW = 5000


def signing_string(
    timestamp: int, api_key: str, recv_window: int, method: str, query: str = "", body: str = ""
) -> str:
    """``timestamp + api_key + recv_window`` and the query (GET, DELETE) or the JSON body
    (POST, PUT)."""
    method = method_of(method)
    if not api_key:
        raise ValueError("the Bybit API key id must not be empty")
    if recv_window < 1:
        raise ValueError("the Bybit receive window must be at least 1 ms")
    if method in ("POST", "PUT"):
        if query:
            raise ValueError(f"a Bybit {method} request signs its body, not a query")
        if body:
            check_json_body(body)
        params = body
    else:
        if body:
            raise ValueError(f"a {method} request signs no body")
        if query:
            check_form("the query", query)
        params = query
    return f"{int(timestamp)}{api_key}{int(recv_window)}{params}"


def _headers(
    key: str,
    method: str,
    query: str,
    body: str,
    recv_window: int,
    api_key: Optional[str],
    timestamp: Optional[int],
) -> "Helper[Dict[str, str]]":
    info = yield Info(key)
    key_id = api_key_of(info, api_key)
    stamp = now_ms() if timestamp is None else int(timestamp)
    signed = signing_string(stamp, key_id, recv_window, method, query, body)
    signature = yield Sign(key, signed.encode("utf-8"))
    encoded = signature.hex() if info.scheme.is_hmac else base64.b64encode(signature).decode()
    return {
        "X-BAPI-API-KEY": key_id,
        "X-BAPI-TIMESTAMP": str(stamp),
        "X-BAPI-RECV-WINDOW": str(int(recv_window)),
        "X-BAPI-SIGN": encoded,
    }


def headers(
    client: Client,
    key: str,
    method: str,
    query: str = "",
    body: str = "",
    *,
    recv_window: int = DEFAULT_RECV_WINDOW,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """Signs a request with ``key`` and returns ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``,
    ``X-BAPI-RECV-WINDOW`` and ``X-BAPI-SIGN``. ``query`` (GET, DELETE) is form-encoded as
    sent; ``body`` (POST, PUT) is the JSON exactly as sent. ``api_key`` defaults to the key's
    stored API key id, ``timestamp`` (ms) to now."""
    return run(client, _headers(key, method, query, body, recv_window, api_key, timestamp))


async def headers_async(
    client: AsyncClient,
    key: str,
    method: str,
    query: str = "",
    body: str = "",
    *,
    recv_window: int = DEFAULT_RECV_WINDOW,
    api_key: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> Dict[str, str]:
    """:func:`headers` on an :class:`~keyward.AsyncClient`."""
    helper = _headers(key, method, query, body, recv_window, api_key, timestamp)
    return await run_async(client, helper)
