"""python-binance through keywardd: ``Client`` and ``AsyncClient`` that take a keyward
reference where python-binance takes the secret or the private key, and are otherwise
python-binance's own classes::

    from keyward.integrations.python_binance import Client   # was: from binance import Client

    client = Client(API_KEY, "keyward:binance-main")          # HMAC, Ed25519 or RSA key
    client = Client(API_KEY, private_key="keyward:binance-main")   # the same

The key's scheme, as keywardd reports it, decides how python-binance signs: HMAC-SHA256 keys
as ``api_secret``, Ed25519 and RSA keys as ``private_key``. No secret or key is parsed or held:
python-binance's four signing methods (``_init_private_key``, ``_hmac_signature``,
``_ed25519_signature``, ``_rsa_signature`` of ``binance/base_client.py``) are overridden, which
covers REST, the WebSocket API and the futures WebSocket API alike.

``AsyncClient`` signs synchronously, as python-binance does: one round trip to keywardd
blocks the event loop. ``AsyncClient.create(...)`` works and uses the shared default
:class:`keyward.Client`; pass ``keyward_client=`` to the constructor for another one.
"""

import inspect
from base64 import b64encode
from typing import Any, Callable, Dict, Optional, Tuple

import binance
from binance.async_client import AsyncClient as _AsyncClient
from binance.base_client import BaseClient as _BaseClient
from binance.client import Client as _Client

from ..client import Client as _KeywardClient
from ..protocol import KeyInfo, Scheme
from . import IncompatibleError, default_client, expect_scheme, lookup, reference

__all__ = ["Client", "AsyncClient", "TESTED_VERSIONS"]

#: The python-binance releases this module was checked against, byte for byte.
TESTED_VERSIONS = ("1.0.37",)

_HOOKS = {
    "_init_private_key": ("self", "private_key", "private_key_pass"),
    "_hmac_signature": ("self", "query_string"),
    "_ed25519_signature": ("self", "query_string"),
    "_rsa_signature": ("self", "query_string"),
    "_generate_signature": ("self", "data", "uri_encode"),
}
_SCHEMES = (Scheme.HMAC_SHA256, Scheme.ED25519, Scheme.RSA_PKCS1V15_SHA256)


def _check() -> None:
    version = getattr(binance, "__version__", "?")
    for name, params in _HOOKS.items():
        method = getattr(_BaseClient, name, None)
        found = tuple(inspect.signature(method).parameters) if callable(method) else None
        if found != params:
            raise IncompatibleError(
                f"python-binance {version} changed BaseClient.{name} (expected "
                f"{name}({', '.join(params)}), found {found}); keyward.integrations."
                f"python_binance is tested with python-binance {', '.join(TESTED_VERSIONS)}"
            )


class _KeywardKey:
    """What stands in python-binance's ``PRIVATE_KEY``: truthy, and only a name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<keyward key {self.name!r}>"


class _Signing:
    """The overrides, shared by the sync and the asyncio client."""

    _keyward_client: Optional[_KeywardClient]
    keyward_key: KeyInfo
    _is_rsa: bool

    @property
    def keyward(self) -> _KeywardClient:
        """The keyward client: the one given, else the process's default (per process, so a
        forked child never shares its parent's connection)."""
        return self._keyward_client if self._keyward_client is not None else default_client()

    def _keyward_bind(
        self,
        parent_init: Callable[..., None],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        keyward_client: Optional[_KeywardClient],
    ) -> inspect.BoundArguments:
        _check()
        bound = inspect.signature(parent_init).bind(self, *args, **kwargs)
        given = bound.arguments
        refs = [
            (field, reference(given.get(field)))
            for field in ("api_secret", "private_key")
            if given.get(field) is not None
        ]
        names = [name for _, name in refs if name is not None]
        if len(refs) != 1 or len(names) != 1:
            raise ValueError(
                "give exactly one of api_secret or private_key, written as "
                "'keyward:<key name>' (keywardd holds the key; this client holds none)"
            )
        given["api_secret"] = None
        given["private_key"] = None
        given.pop("private_key_pass", None)
        self._keyward_client = keyward_client
        info = lookup(self.keyward, names[0])
        if info.scheme not in _SCHEMES:
            raise IncompatibleError(
                f"Binance signs with HMAC-SHA256, Ed25519 or RSA keys; keyward key "
                f"{info.name!r} is {info.scheme.value}"
            )
        self.keyward_key = info
        return bound

    def _init_private_key(self, private_key: Any, private_key_pass: Optional[str] = None) -> Any:
        # Called by BaseClient.__init__ in place of parsing a key: a truthy stand-in makes
        # python-binance take its RSA/Ed25519 path, None its HMAC path.
        if self.keyward_key.scheme == Scheme.HMAC_SHA256:
            return None
        self._is_rsa = self.keyward_key.scheme == Scheme.RSA_PKCS1V15_SHA256
        return _KeywardKey(self.keyward_key.name)

    def _keyward_sign(self, query_string: str, scheme: Scheme, what: str) -> bytes:
        expect_scheme(self.keyward_key, scheme, what)
        return self.keyward.sign(self.keyward_key.name, query_string)

    def _hmac_signature(self, query_string: str) -> str:
        return self._keyward_sign(query_string, Scheme.HMAC_SHA256, "an HMAC signature").hex()

    def _ed25519_signature(self, query_string: str) -> str:
        sig = self._keyward_sign(query_string, Scheme.ED25519, "an Ed25519 signature")
        return b64encode(sig).decode()

    def _rsa_signature(self, query_string: str) -> str:
        sig = self._keyward_sign(query_string, Scheme.RSA_PKCS1V15_SHA256, "an RSA signature")
        return b64encode(sig).decode()


class Client(_Signing, _Client):  # type: ignore[misc]
    """python-binance's ``Client``, signing with the keyward key named by ``api_secret`` or
    ``private_key`` (``"keyward:<key name>"``). Every other argument is python-binance's.
    ``keyward_client``: the :class:`keyward.Client` to use (default: one per process)."""

    def __init__(self, *args: Any, keyward_client: Optional[_KeywardClient] = None, **kwargs: Any):
        bound = self._keyward_bind(_Client.__init__, args, kwargs, keyward_client)
        _Client.__init__(*bound.args, **bound.kwargs)

    def __del__(self) -> None:
        # python-binance's __del__ closes a session that a refused constructor never made.
        if "session" in vars(self):
            super().__del__()


class AsyncClient(_Signing, _AsyncClient):  # type: ignore[misc]
    """python-binance's ``AsyncClient``, as :class:`Client`. ``await AsyncClient.create(
    API_KEY, "keyward:binance-main")`` works as python-binance's does."""

    def __init__(self, *args: Any, keyward_client: Optional[_KeywardClient] = None, **kwargs: Any):
        bound = self._keyward_bind(_AsyncClient.__init__, args, kwargs, keyward_client)
        _AsyncClient.__init__(*bound.args, **bound.kwargs)
