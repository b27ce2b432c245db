"""keyward: the Python client of keywardd, the signing agent for exchange API keys.

A bot asks the daemon to sign a payload with a named key over a Unix socket and gets the raw
signature back; the private key never enters the bot's process::

    import keyward

    with keyward.Client() as client:        # $KEYWARD_SOCK, else the default socket path
        signature = client.sign("binance-main", "symbol=BTCUSDT&timestamp=1700000000000")

Pure Python, no dependencies. :class:`Client` is blocking; :class:`AsyncClient` offers the
same calls on asyncio. Every failure is a :class:`KeywardError` whose ``code`` is the
protocol's :class:`ErrorCode`.
"""

from ._core import SOCKET_ENV, default_socket_path, socket_path
from .aio import AsyncClient
from .client import Client
from .errors import (
    DeniedError,
    ErrorCode,
    KeywardError,
    LockedError,
    PolicyError,
    ProtocolError,
    RateLimitedError,
    BatchExceedsBurstError,
    UnavailableError,
    UnknownKeyError,
)
from .protocol import (
    PROTOCOL_VERSION,
    KeyInfo,
    KeystoreState,
    PayloadFormat,
    Scheme,
    Status,
    UnreadableKey,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "KeywardError",
    "LockedError",
    "DeniedError",
    "PolicyError",
    "RateLimitedError",
    "BatchExceedsBurstError",
    "UnknownKeyError",
    "ProtocolError",
    "UnavailableError",
    "ErrorCode",
    "KeyInfo",
    "Status",
    "UnreadableKey",
    "KeystoreState",
    "PayloadFormat",
    "Scheme",
    "PROTOCOL_VERSION",
    "SOCKET_ENV",
    "default_socket_path",
    "socket_path",
]
