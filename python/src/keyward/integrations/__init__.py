"""Drop-in routes from trading libraries to keywardd: the library builds its requests as it
always does, and every signature it would have computed with a secret or private key is made
by keywardd instead. The bot's process holds no key.

One module per library, each an optional extra (``pip install keyward[ccxt]``):

- :mod:`keyward.integrations.ccxt`: ``keyward_exchange(ccxt.binance, "binance-main")``, for
  the sync, ``async_support`` and ``pro`` classes; :func:`~keyward.integrations.ccxt.install`
  routes every exchange whose ``secret`` is a reference such as ``"keyward:binance-main"``;
- :mod:`keyward.integrations.freqtrade`: ``keyward-freqtrade trade --config ...``;
- :mod:`keyward.integrations.python_binance`: ``Client`` and ``AsyncClient`` subclasses;
- :mod:`keyward.integrations.binance_sdk`: ``install()`` for ``binance-sdk-*`` (a patch);
- :mod:`keyward.integrations.binance_connector`: ``Spot`` for the deprecated connector.

This module holds what they share: references, the default client and the key lookup.
"""

import os
import threading
from typing import Any, Optional

from ..client import Client
from ..errors import ErrorCode, KeywardError, UnknownKeyError
from ..protocol import KeyInfo, Scheme

__all__ = [
    "REFERENCE_PREFIX",
    "IncompatibleError",
    "reference",
    "default_client",
    "lookup",
]

#: A secret written as ``"keyward:<key name>"`` names a key held by keywardd.
REFERENCE_PREFIX = "keyward:"


class IncompatibleError(KeywardError):
    """The installed library does not sign the way this integration was built for (its
    signing hooks changed), or the key's scheme cannot make the signature the library asked
    for. Raised when the exchange object or client is made, or at the first signature that
    cannot be routed: never a silently wrong signature."""

    default_code = ErrorCode.INVALID_KEY


def reference(secret: Any) -> Optional[str]:
    """The key name of a reference such as ``"keyward:binance-main"``, else ``None``."""
    if isinstance(secret, str) and secret.startswith(REFERENCE_PREFIX):
        name = secret[len(REFERENCE_PREFIX) :]
        if name:
            return name
    return None


_default: Optional[Client] = None
_default_pid = 0
_default_lock = threading.Lock()


def default_client() -> Client:
    """One blocking :class:`keyward.Client` per process (``$KEYWARD_SOCK``, else the default
    socket), made at first use and shared: its calls take turns, from any thread. A forked
    child gets its own (two processes must never share one connection's stream)."""
    global _default, _default_pid
    with _default_lock:
        if _default is None or _default_pid != os.getpid():
            _default = Client()
            _default_pid = os.getpid()
        return _default


def lookup(client: Client, name: str) -> KeyInfo:
    """The key named ``name`` as the daemon lists it (its scheme and API key id)."""
    for info in client.list():
        if info.name == name:
            return info
    raise UnknownKeyError(f"keywardd has no key named {name!r} that this user may use")


def expect_scheme(info: KeyInfo, wanted: Scheme, what: str) -> None:
    """Refuses to sign ``what`` with a key of another scheme."""
    if info.scheme != wanted:
        raise IncompatibleError(
            f"{what} needs a {wanted.value} key, but keyward key {info.name!r} is "
            f"{info.scheme.value}"
        )
