"""Binance's official modular SDKs (``binance-sdk-spot``, ``binance-sdk-derivatives-*`` ...,
all built on ``binance-common``) through keywardd. They have no signer option, so this is a
**patch**: :func:`install` replaces the two functions every signed request goes through, for
the whole process::

    from keyward.integrations import binance_sdk
    binance_sdk.install()                                   # the one added line

    config = ConfigurationRestAPI(api_key=API_KEY, private_key="keyward:binance-main")
    client = Spot(config_rest_api=config)                   # unchanged from here on

A ``private_key`` written as ``"keyward:<key name>"`` (an Ed25519 or RSA key in keywardd) is
answered by ``binance_common.signature.Signers.get_signer`` with a signer that asks keywardd;
an ``api_secret`` written so (an HMAC-SHA256 key) is signed by keywardd in
``binance_common.utils.hmac_hashing``. Any other key or secret goes to the SDK's own code.
This covers REST, the WebSocket API (including session logon) and signed streams.
Not covered: ``binance_common.utils.web3_signature`` with an ``api_secret`` (it computes the
HMAC inline); no spot endpoint uses it.

:func:`installed` is the same as a context manager; :func:`uninstall` undoes it.
"""

import contextlib
import inspect
import threading
from typing import Any, Callable, Dict, Iterator, Optional

import binance_common.signature as _signature
import binance_common.utils as _utils

from ..client import Client
from ..protocol import KeyInfo, Scheme
from . import IncompatibleError, default_client, expect_scheme, lookup, reference

__all__ = ["install", "uninstall", "installed", "TESTED_VERSIONS"]

#: The binance-common releases this patch was checked against (with binance-sdk-spot 13.3.0).
TESTED_VERSIONS = ("4.7.0",)

_lock = threading.Lock()
_originals: Optional[Dict[str, Any]] = None


class KeywardSigner:
    """What ``Signers.get_signer`` returns for a keyward reference: ``sign(message)`` gives
    the raw signature, which ``binance_common.utils.get_signature`` base64-encodes (it hashes
    first only for pycryptodome's own RSA signer, which this is not)."""

    def __init__(self, client: Client, info: KeyInfo) -> None:
        self.client = client
        self.info = info

    def sign(self, message: bytes) -> bytes:
        return self.client.sign(self.info.name, message)

    def __repr__(self) -> str:
        return f"<KeywardSigner {self.info.name!r} ({self.info.scheme.value})>"


def _check() -> None:
    get_signer = inspect.getattr_static(_signature.Signers, "get_signer", None)
    if not isinstance(get_signer, classmethod) or tuple(
        inspect.signature(get_signer.__func__).parameters
    ) != ("cls", "private_key", "passphrase"):
        raise IncompatibleError(
            "binance-common changed Signers.get_signer; keyward.integrations.binance_sdk is "
            f"tested with binance-common {', '.join(TESTED_VERSIONS)}"
        )
    hashing = getattr(_utils, "hmac_hashing", None)
    if not callable(hashing) or tuple(inspect.signature(hashing).parameters) != (
        "api_secret",
        "payload",
    ):
        raise IncompatibleError(
            "binance-common changed utils.hmac_hashing; keyward.integrations.binance_sdk is "
            f"tested with binance-common {', '.join(TESTED_VERSIONS)}"
        )
    if "hmac_hashing" not in _utils.get_signature.__code__.co_names:
        raise IncompatibleError(
            "binance-common's get_signature no longer calls hmac_hashing; refusing to patch"
        )


def install(client: Optional[Client] = None) -> None:
    """Routes every ``"keyward:<key name>"`` private key or API secret of Binance's SDKs
    to keywardd, process-wide. Idempotent. ``client``: the :class:`keyward.Client` to use
    (default: one per process, made at the first signature)."""
    global _originals
    _check()
    with _lock:
        if _originals is not None:
            return
        original_get_signer: Callable[..., Any] = _signature.Signers.get_signer.__func__  # type: ignore[attr-defined]
        original_hmac: Callable[[str, str], str] = _utils.hmac_hashing
        infos: Dict[str, KeyInfo] = {}

        def keyward() -> Client:
            return client if client is not None else default_client()

        def info_of(name: str) -> KeyInfo:
            if name not in infos:
                infos[name] = lookup(keyward(), name)
            return infos[name]

        def get_signer(cls: Any, private_key: Any, passphrase: Optional[str] = None) -> Any:
            name = reference(private_key)
            if name is None:
                return original_get_signer(cls, private_key, passphrase)
            info = info_of(name)
            if info.scheme not in (Scheme.ED25519, Scheme.RSA_PKCS1V15_SHA256):
                raise IncompatibleError(
                    f"a Binance private_key is an Ed25519 or RSA key; keyward key {name!r} is "
                    f"{info.scheme.value} (give an HMAC key as api_secret)"
                )
            return KeywardSigner(keyward(), info)

        def hmac_hashing(api_secret: str, payload: str) -> str:
            name = reference(api_secret)
            if name is None:
                return original_hmac(api_secret, payload)
            info = info_of(name)
            expect_scheme(info, Scheme.HMAC_SHA256, "a Binance api_secret")
            return keyward().sign(name, payload).hex()

        _signature.Signers.get_signer = classmethod(get_signer)  # type: ignore[method-assign,assignment]
        _utils.hmac_hashing = hmac_hashing
        _originals = {"get_signer": original_get_signer, "hmac_hashing": original_hmac}


def uninstall() -> None:
    """Puts the SDK's own functions back."""
    global _originals
    with _lock:
        if _originals is None:
            return
        _signature.Signers.get_signer = classmethod(_originals["get_signer"])  # type: ignore[method-assign,assignment]
        _utils.hmac_hashing = _originals["hmac_hashing"]
        _originals = None


@contextlib.contextmanager
def installed(client: Optional[Client] = None) -> Iterator[None]:
    """:func:`install` for the duration of a ``with`` block."""
    install(client)
    try:
        yield
    finally:
        uninstall()
