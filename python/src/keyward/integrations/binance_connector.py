"""binance-connector (Binance's earlier official connector, deprecated by Binance in favour of
the ``binance-sdk-*`` packages) through keywardd, for its REST client::

    from keyward.integrations.binance_connector import Spot   # was: from binance.spot import Spot

    client = Spot(API_KEY, "keyward:binance-main")            # HMAC, Ed25519 or RSA key
    client = Spot(API_KEY, private_key="keyward:binance-main")    # the same

Every signed REST request goes through ``binance.api.API._get_sign``, which this ``Spot``
overrides; the output has the connector's own types (hex text for HMAC, base64 bytes for
Ed25519 and RSA). Not routed: the WebSocket API clients (``binance.websocket``), which take
``api_secret`` and compute an HMAC inline in ``binance.lib.utils.websocket_api_signature``;
use the REST client or the SDKs (:mod:`keyward.integrations.binance_sdk`) instead.
"""

import inspect
from base64 import b64encode
from typing import Any, Optional

import binance.api
from binance.__version__ import __version__ as _version
from binance.spot import Spot as _Spot

from ..client import Client
from ..protocol import KeyInfo, Scheme
from . import IncompatibleError, default_client, lookup, reference

__all__ = ["Spot", "KeywardSigning", "TESTED_VERSIONS"]

#: The binance-connector releases this module was checked against, byte for byte.
TESTED_VERSIONS = ("3.13.0",)


def _check() -> None:
    get_sign = getattr(binance.api.API, "_get_sign", None)
    if not callable(get_sign) or tuple(inspect.signature(get_sign).parameters) != (
        "self",
        "payload",
    ):
        raise IncompatibleError(
            f"binance-connector {_version} changed API._get_sign; keyward.integrations."
            f"binance_connector is tested with {', '.join(TESTED_VERSIONS)}"
        )


class KeywardSigning:
    """The override of ``API._get_sign``; mix it in before any ``binance.api.API`` class."""

    _keyward_client: Optional[Client]
    keyward_key: KeyInfo

    @property
    def keyward(self) -> Client:
        """The keyward client: the one given, else the process's default (per process, so a
        forked child never shares its parent's connection)."""
        return self._keyward_client if self._keyward_client is not None else default_client()

    def _keyward_setup(self, api_secret: Any, private_key: Any, client: Optional[Client]) -> None:
        _check()
        refs = [value for value in (api_secret, private_key) if value is not None]
        if len(refs) != 1 or reference(refs[0]) is None:
            raise ValueError(
                "give exactly one of api_secret or private_key, written as "
                "'keyward:<key name>' (keywardd holds the key; this client holds none)"
            )
        self._keyward_client = client
        info = lookup(self.keyward, reference(refs[0]) or "")
        if info.scheme not in (Scheme.HMAC_SHA256, Scheme.ED25519, Scheme.RSA_PKCS1V15_SHA256):
            raise IncompatibleError(
                f"Binance signs with HMAC-SHA256, Ed25519 or RSA keys; keyward key "
                f"{info.name!r} is {info.scheme.value}"
            )
        self.keyward_key = info

    def _get_sign(self, payload: str) -> Any:
        signature = self.keyward.sign(self.keyward_key.name, payload)
        if self.keyward_key.scheme == Scheme.HMAC_SHA256:
            return signature.hex()
        return b64encode(signature)


class Spot(KeywardSigning, _Spot):  # type: ignore[misc]
    """binance-connector's ``Spot``, signing with the keyward key named by ``api_secret`` or
    ``private_key`` (``"keyward:<key name>"``). ``keyward_client``: the
    :class:`keyward.Client` to use (default: one per process)."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        api_secret: Optional[str] = None,
        *,
        keyward_client: Optional[Client] = None,
        **kwargs: Any,
    ) -> None:
        private_key = kwargs.pop("private_key", None)
        kwargs.pop("private_key_pass", None)
        self._keyward_setup(api_secret, private_key, keyward_client)
        # No secret or key reaches the connector: it only ever calls _get_sign.
        _Spot.__init__(self, api_key, None, **kwargs)
