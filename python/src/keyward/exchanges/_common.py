"""What the exchange helpers share: running a helper on a sync or an async client, the key's
API key id and scheme, and the checks that keep a helper's output inside the grammar the
daemon's payload rules parse (docs/POLICY.md).

Each helper is written once, as a generator that yields what it needs from the daemon
(``Sign`` or ``Info``) and returns its result; :func:`run` drives it on a
:class:`keyward.Client`, :func:`run_async` on a :class:`keyward.AsyncClient`. The I/O is the
only difference, as in the clients themselves.
"""

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, Generator, List, Optional, Tuple, TypeVar, Union

from ..aio import AsyncClient
from ..client import Client
from ..errors import ErrorCode, UnknownKeyError
from ..protocol import KeyInfo

T = TypeVar("T")


@dataclass(frozen=True)
class Sign:
    """Ask the daemon to sign ``payload`` with ``key``; answered with the raw signature."""

    key: str
    payload: bytes


@dataclass(frozen=True)
class Info:
    """Ask for the :class:`~keyward.KeyInfo` of ``key`` (its scheme, its API key id)."""

    key: str


@dataclass(frozen=True)
class SignPassphrase:
    """Ask the daemon to sign the passphrase stored with ``key``; answered with the raw
    signature (protocol version 3)."""

    key: str


Op = Union[Sign, Info, SignPassphrase]
Helper = Generator[Op, Any, T]


def run(client: Client, helper: "Helper[T]") -> T:
    """Runs ``helper`` on a blocking client."""
    answer: Any = None
    try:
        while True:
            op = helper.send(answer)
            if isinstance(op, Sign):
                answer = client.sign(op.key, op.payload)
            elif isinstance(op, SignPassphrase):
                answer = client.sign_passphrase(op.key)
            else:
                answer = _find(client.list(), op.key)
    except StopIteration as done:
        result: T = done.value
        return result


async def run_async(client: AsyncClient, helper: "Helper[T]") -> T:
    """Runs ``helper`` on an asyncio client."""
    answer: Any = None
    try:
        while True:
            op = helper.send(answer)
            if isinstance(op, Sign):
                answer = await client.sign(op.key, op.payload)
            elif isinstance(op, SignPassphrase):
                answer = await client.sign_passphrase(op.key)
            else:
                answer = _find(await client.list(), op.key)
    except StopIteration as done:
        result: T = done.value
        return result


def _find(keys: List[KeyInfo], name: str) -> KeyInfo:
    for info in keys:
        if info.name == name:
            return info
    raise UnknownKeyError(f"no key named {name!r} that this user may see", ErrorCode.UNKNOWN_KEY)


def api_key_of(info: KeyInfo, given: Optional[str]) -> str:
    """``given``, else the key's stored API key id, else a :class:`ValueError`."""
    if given is not None:
        return given
    if not info.api_key:
        raise ValueError(
            f"key {info.name!r} has no API key id stored; pass api_key=, or add the key "
            "with --api-key"
        )
    return info.api_key


def now_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


METHODS = ("GET", "POST", "PUT", "DELETE")


def method_of(method: str) -> str:
    """``method`` upper case, one of GET, POST, PUT, DELETE."""
    upper = method.upper()
    if upper not in METHODS:
        raise ValueError(f"the method must be GET, POST, PUT or DELETE, not {method!r}")
    return upper


_SEGMENT = re.compile(r"[A-Za-z0-9\-_.~]+\Z")


def check_path(path: str) -> None:
    """``/segment(/segment)*``, each of ``A-Z a-z 0-9 - _ . ~``, never ``.`` or ``..``."""
    segments = path.split("/")
    if (
        not path.startswith("/")
        or any(not _SEGMENT.match(s) or s in (".", "..") for s in segments[1:])
    ):
        raise ValueError(
            f"the path {path!r} must be /segment(/segment)*, each of A-Z a-z 0-9 - _ . ~ "
            "(no query, escapes, empty or dot segments)"
        )


def check_form_text(what: str, text: str) -> None:
    """Printable ASCII except ``& = #``, ``%`` only before two hex digits."""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1 : i + 3]):
                break
            i += 3
            continue
        if not ("!" <= c <= "~") or c in "&=#":
            break
        i += 1
    else:
        return
    raise ValueError(f"{what}: {text!r} must be percent-encoded printable ASCII")


def check_form(what: str, form: str) -> None:
    """Strict form data: ``name=value`` pairs joined by ``&``, no name twice (ignoring case)."""
    seen = set()
    for pair in form.split("&"):
        name, eq, value = pair.partition("=")
        if not eq or not name or "=" in value:
            raise ValueError(f"{what}: {pair!r} is not name=value")
        check_form_text(what, name)
        check_form_text(what, value)
        if name.lower() in seen:
            raise ValueError(f"{what}: {name!r} appears twice")
        seen.add(name.lower())


def check_json_body(body: str) -> None:
    """One JSON object or array with nothing around it."""
    framed = body[:1] + body[-1:] in ("{}", "[]")
    try:
        json.loads(body)
    except ValueError:
        framed = False
    if not framed:
        raise ValueError("the body must be one JSON object or array, with no whitespace around it")


def prefixed_string(timestamp: str, method: str, path: str, query: str, body: str) -> str:
    """OKX, KuCoin, Bitget: ``timestamp + METHOD + path [+ "?" + query] + body``."""
    method = method_of(method)
    check_path(path)
    if query:
        check_form("the query", query)
    if body:
        if method in ("GET", "DELETE"):
            raise ValueError(f"a {method} request signs no body")
        check_json_body(body)
    return timestamp + method + path + ("?" + query if query else "") + body


def prefixed_headers(
    key: str,
    names: Tuple[str, str, str, str],
    stamp: str,
    method: str,
    path: str,
    query: str,
    body: str,
    passphrase: Optional[str],
    api_key: Optional[str],
    extra: Optional[Dict[str, str]] = None,
) -> "Helper[Dict[str, str]]":
    """OKX, KuCoin, Bitget: sign :func:`prefixed_string` and return the four headers named
    ``names`` (key, sign, timestamp, passphrase), base64 signature, then ``extra``.
    ``passphrase=None``: base64 of the daemon's signature of the passphrase stored with the
    key (KuCoin), fetched before the request is signed."""
    signed = prefixed_string(stamp, method, path, query, body)
    if passphrase is None:
        stored = yield SignPassphrase(key)
        passphrase = base64.b64encode(stored).decode("ascii")
    info = yield Info(key)
    key_id = api_key_of(info, api_key)
    signature = yield Sign(key, signed.encode("utf-8"))
    out = {
        names[0]: key_id,
        names[1]: base64.b64encode(signature).decode("ascii"),
        names[2]: stamp,
        names[3]: passphrase,
    }
    out.update(extra or {})
    return out
