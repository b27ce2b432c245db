"""Binance: signed REST query strings and signed WebSocket API params.

Binance's SIGNED endpoints take the request's parameters plus a ``signature`` computed over
"the query string concatenated without separator to the HTTP body" (binance-spot-api-docs,
rest-api.md, SIGNED Endpoint Examples): lowercase hex for HMAC keys, base64 for RSA and
Ed25519 keys (percent-encoded in a query string). The WebSocket API signs the ``params``
sorted by name as ``name=value`` pairs joined by ``&``. The daemon's ``binance`` format parses
exactly these strings.

``X-MBX-APIKEY`` (REST) and ``apiKey`` (WebSocket) take the key's API key id:
:func:`api_key` returns the stored one::

    from keyward.exchanges import binance

    query = binance.signed_query(client, "binance-main", "symbol=BTCUSDT&timestamp=...")
    headers = {"X-MBX-APIKEY": binance.api_key(client, "binance-main")}
"""

import base64
import urllib.parse
from typing import Any, Dict, List, Mapping, Tuple

from ..aio import AsyncClient
from ..client import Client
from ..protocol import KeyInfo
from ._common import Helper, Info, Sign, api_key_of, check_form, check_form_text, run, run_async

__all__ = [
    "signed_query",
    "signed_query_async",
    "sign_params",
    "sign_params_async",
    "api_key",
    "api_key_async",
    "payload",
    "ws_payload",
]


def payload(query: str, body: str = "") -> str:
    """What Binance signs: ``query`` and ``body`` (both form-encoded as sent), no separator.

    When both are given, the body's first parameter must be one the daemon knows, to tell
    where the query ends (docs/POLICY.md); sending every parameter in one part avoids that."""
    for what, part in (("the query", query), ("the body", body)):
        if part:
            check_form(what, part)
    return query + body


def _encode(info: KeyInfo, signature: bytes, for_query: bool) -> str:
    if info.scheme.is_hmac:
        return signature.hex()
    text = base64.b64encode(signature).decode("ascii")
    return urllib.parse.quote(text, safe="") if for_query else text


def _signed_query(key: str, query: str, body: str) -> "Helper[str]":
    signed = payload(query, body)
    info = yield Info(key)
    signature = yield Sign(key, signed.encode("ascii"))
    value = _encode(info, signature, True)
    return f"{query}&signature={value}" if query else f"signature={value}"


def signed_query(client: Client, key: str, query: str, body: str = "") -> str:
    """Signs ``query + body`` with ``key`` and returns ``query`` with ``&signature=...``
    appended (hex for HMAC keys, percent-encoded base64 otherwise); send ``body`` as is."""
    return run(client, _signed_query(key, query, body))


async def signed_query_async(client: AsyncClient, key: str, query: str, body: str = "") -> str:
    """:func:`signed_query` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _signed_query(key, query, body))


def _text(value: Any) -> str:
    # As the value appears in the request's JSON: Binance signs `true`, not `True`.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ws_payload(params: Mapping[str, Any]) -> Tuple[List[Tuple[str, Any]], str]:
    """The WebSocket API signature payload: ``params`` sorted by name, ``name=value`` joined by
    ``&``; also the sorted items. A value the daemon would decode (``%``, ``+``) or refuse
    (space, ``&``, ``=``, non-ASCII) raises :class:`ValueError`."""
    items = sorted(params.items())
    for name, value in items:
        if name == "signature":
            raise ValueError("params already hold a signature")
        for text in (name, _text(value)):
            if "%" in text or "+" in text:
                raise ValueError(
                    f"WebSocket param {name!r}: {text!r} holds '%' or '+', which the daemon "
                    "would decode"
                )
            check_form_text("a WebSocket param", text)
    signed = "&".join(f"{name}={_text(value)}" for name, value in items)
    check_form("the WebSocket params", signed)
    return items, signed


def _sign_params(key: str, params: Mapping[str, Any]) -> "Helper[Dict[str, Any]]":
    items, signed = ws_payload(params)
    info = yield Info(key)
    signature = yield Sign(key, signed.encode("ascii"))
    out = dict(items)
    out["signature"] = _encode(info, signature, False)
    return out


def sign_params(client: Client, key: str, params: Mapping[str, Any]) -> Dict[str, Any]:
    """Signs WebSocket API ``params`` (include ``apiKey`` and ``timestamp``) with ``key`` and
    returns them sorted by name with ``signature`` added (hex for HMAC keys, base64
    otherwise); the values keep their types for the request's JSON."""
    return run(client, _sign_params(key, params))


async def sign_params_async(
    client: AsyncClient, key: str, params: Mapping[str, Any]
) -> Dict[str, Any]:
    """:func:`sign_params` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _sign_params(key, params))


def _api_key(key: str) -> "Helper[str]":
    info = yield Info(key)
    return api_key_of(info, None)


def api_key(client: Client, key: str) -> str:
    """The key's stored API key id: the ``X-MBX-APIKEY`` header and the ``apiKey`` param."""
    return run(client, _api_key(key))


async def api_key_async(client: AsyncClient, key: str) -> str:
    """:func:`api_key` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _api_key(key))
