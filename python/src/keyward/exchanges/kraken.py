"""Kraken spot REST: the ``API-Sign`` header.

API-Sign is "HMAC-SHA512 of (URI path + SHA256(nonce + POST data)) and base64 decoded secret
API key", sent base64 (Kraken REST API, Authentication). The daemon holds the decoded secret
as an ``hmac-sha512`` key (``keyward import --secret-format base64``) and signs the path
followed by the 32 raw bytes of the SHA-256, which its ``kraken`` format parses::

    from keyward.exchanges import kraken

    nonce = time.time_ns() // 1000
    postdata = f"nonce={nonce}&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    sign = kraken.api_sign(client, "kraken-main", "/0/private/AddOrder", nonce, postdata)
"""

import base64
import hashlib
from typing import Union

from ..aio import AsyncClient
from ..client import Client
from ._common import Helper, Sign, check_path, run, run_async

__all__ = ["api_sign", "api_sign_async", "signing_input"]


def signing_input(path: str, nonce: Union[int, str], postdata: str) -> bytes:
    """``path`` followed by SHA-256(``nonce`` + ``postdata``)."""
    check_path(path)
    digest = hashlib.sha256((str(nonce) + postdata).encode("utf-8")).digest()
    return path.encode("ascii") + digest


def _api_sign(key: str, path: str, nonce: Union[int, str], postdata: str) -> "Helper[str]":
    signature = yield Sign(key, signing_input(path, nonce, postdata))
    return base64.b64encode(signature).decode("ascii")


def api_sign(client: Client, key: str, path: str, nonce: Union[int, str], postdata: str) -> str:
    """The ``API-Sign`` value for a POST of ``postdata`` (which carries ``nonce=<nonce>``) to
    ``path`` (e.g. ``/0/private/AddOrder``)."""
    return run(client, _api_sign(key, path, nonce, postdata))


async def api_sign_async(
    client: AsyncClient, key: str, path: str, nonce: Union[int, str], postdata: str
) -> str:
    """:func:`api_sign` on an :class:`~keyward.AsyncClient`."""
    return await run_async(client, _api_sign(key, path, nonce, postdata))
