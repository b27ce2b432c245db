"""ccxt through keywardd: one call gives an exchange object that signs with a key held by
keywardd, and holds no secret or private key at all::

    import ccxt
    from keyward.integrations.ccxt import keyward_exchange

    exchange = keyward_exchange(ccxt.binance, "binance-main")   # was: ccxt.binance({...})

It works the same for ``ccxt.async_support`` and ``ccxt.pro`` classes.

How: every ccxt exchange signs through five static methods of its base class, ``hmac``,
``rsa``, ``eddsa``, ``ecdsa`` and ``jwt``, and the constructor copies every config key onto
the instance, so config entries of those names replace them for that object alone. The
object's ``secret`` is a placeholder shaped so that the exchange's own code picks the path of
the key's scheme (Binance, for one, picks RSA or Ed25519 from the secret's text); the hooks
recognise the placeholder (as text, as bytes, base64-decoded as Kraken does, or as the 32-byte
seed Coinbase cuts from it) and ask keywardd, and pass any other secret (KuCoin's built-in
partner secret, for one) to ccxt's own functions.

ccxt calls these functions synchronously, even in its asyncio classes: a signature blocks
the event loop for one round trip to keywardd (see python/README.md for the figures).

:func:`install` does the same process-wide for every exchange constructed with a ``secret``
written as ``"keyward:<key name>"``: the route for configs that cannot hold a callable
(freqtrade's, see :mod:`keyward.integrations.freqtrade`).
"""

import base64
import binascii
import hashlib
import inspect
import os
import threading
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple, Type, TypeVar

import ccxt
# The base of every exchange class, sync, async_support and pro alike: its __init__ and
# its static signing methods are the ones every exchange runs.
from ccxt.base.exchange import BaseExchange as _Exchange

from ..client import Client
from ..protocol import KeyInfo, Scheme
from . import IncompatibleError, default_client, expect_scheme, lookup, reference

__all__ = ["keyward_exchange", "install", "uninstall", "TESTED_VERSIONS", "HOOKS"]

#: The ccxt releases whose signing this module was checked against, byte for byte.
TESTED_VERSIONS = ("4.5.90",)

#: The static methods of ccxt's base class that sign, with the parameters they are called with.
HOOKS: Dict[str, Tuple[str, ...]] = {
    "hmac": ("request", "secret", "algorithm", "digest"),
    "rsa": ("request", "secret", "alg", "padding_mode"),
    "eddsa": ("request", "secret", "curve", "url_encode"),
    "ecdsa": ("request", "secret", "algorithm", "hash", "fixed_length"),
    "jwt": ("request", "secret", "algorithm", "is_rsa", "opts"),
}
# The encoders the hooks borrow so that their output is ccxt's, byte for byte.
_HELPERS = (
    "binary_to_base16",
    "binary_to_base64",
    "binary_to_urlencoded_base64",
    "urlencode_base64",
    "json",
    "encode",
)

# The order of the P-256 group, to give ES256 signatures ccxt's low-s form.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

E = TypeVar("E", bound=_Exchange)

_checked = False
_check_lock = threading.Lock()


def check_ccxt() -> None:
    """Fails loudly when the installed ccxt no longer signs through the hooks this module
    replaces (a renamed method, other parameters), and warns once on an untested release."""
    global _checked
    with _check_lock:
        if _checked:
            return
        version = getattr(ccxt, "__version__", "?")
        for name, params in HOOKS.items():
            raw = inspect.getattr_static(_Exchange, name, None)
            found = (
                tuple(inspect.signature(raw.__func__).parameters)
                if isinstance(raw, staticmethod)
                else None
            )
            if found != params:
                raise IncompatibleError(
                    f"ccxt {version} changed its signing hook {name}: expected the static "
                    f"method {name}({', '.join(params)}), found "
                    f"{'nothing' if raw is None else found or type(raw).__name__}; "
                    f"keyward.integrations.ccxt is tested with ccxt {', '.join(TESTED_VERSIONS)}"
                )
        for name in _HELPERS:
            if not callable(getattr(_Exchange, name, None)):
                raise IncompatibleError(f"ccxt {version} has no {name}(), which keyward uses")
        if version not in TESTED_VERSIONS:
            warnings.warn(
                f"keyward.integrations.ccxt is tested with ccxt {', '.join(TESTED_VERSIONS)}, "
                f"not {version}: its hooks have the expected shape, but check its signatures",
                stacklevel=3,
            )
        _checked = True


def _is_coinbase(cls: type) -> bool:
    return any(c.__name__ == "coinbase" for c in cls.__mro__)


def _placeholder(scheme: Scheme, exchange_class: type) -> str:
    """A stand-in secret that steers the exchange's code to the path of ``scheme``, and that
    the hooks recognise. Random per object, so two objects' hooks never take each other's."""
    token = base64.b64encode(b"keyward:" + os.urandom(16)).decode()  # 32 characters, no '='
    if scheme.is_hmac:
        # Valid base64 (Kraken decodes its secret), no "PRIVATE KEY", not ending in "=" nor
        # 88 characters long (Coinbase would take it for a CDP key).
        return token
    if scheme == Scheme.ED25519:
        if _is_coinbase(exchange_class):
            # Coinbase takes an 88-character base64 secret as a CDP Ed25519 key and signs
            # with its first 32 bytes.
            return base64.b64encode(base64.b64decode(token) + bytes(40)).decode()
        # Binance: "PRIVATE KEY" in at most 120 characters means Ed25519.
        return f"-----BEGIN PRIVATE KEY-----\n{token}\n-----END PRIVATE KEY-----\n"
    if scheme == Scheme.RSA_PKCS1V15_SHA256:
        # Binance: "PRIVATE KEY" in more than 120 characters means RSA.
        filler = "keyward placeholder: keywardd holds this key"
        return f"-----BEGIN PRIVATE KEY-----\n{filler}\n{token}\n-----END PRIVATE KEY-----\n"
    if scheme == Scheme.ECDSA_P256_SHA256:
        # Coinbase: a secret starting "-----BEGIN" is a CDP key, signed ES256.
        return f"-----BEGIN EC PRIVATE KEY-----\n{token}\n-----END EC PRIVATE KEY-----\n"
    raise IncompatibleError(f"no ccxt route for keyward keys of scheme {scheme.value}")


def _forms(placeholder: str) -> Set[bytes]:
    """Every form in which an exchange's code hands the placeholder to a hook."""
    raw = placeholder.encode()
    forms = {raw}
    try:
        decoded = base64.b64decode(raw, validate=True)
    except binascii.Error:
        return forms
    forms.add(decoded)
    forms.add(decoded[:32])
    return forms


class _Router:
    """The five hooks of one exchange object, bound to one keyward key."""

    def __init__(self, client: Optional[Client], info: KeyInfo, placeholder: str) -> None:
        # None: the process's default client, looked up at each signature (a forked child
        # gets its own connection).
        self.client = client
        self.info = info
        self.placeholder = placeholder
        self._forms = _forms(placeholder)

    def ours(self, secret: Any) -> bool:
        if isinstance(secret, str):
            secret = secret.encode()
        elif isinstance(secret, (bytearray, memoryview)):
            secret = bytes(secret)
        elif isinstance(secret, list):  # ccxt's array_slice of bytes, in some versions
            try:
                secret = bytes(secret)
            except (TypeError, ValueError):
                return False
        return isinstance(secret, bytes) and secret in self._forms

    def sign(self, request: Any, scheme: Scheme, what: str) -> bytes:
        expect_scheme(self.info, scheme, what)
        client = self.client if self.client is not None else default_client()
        return client.sign(self.info.name, request)

    def hmac(self, request: Any, secret: Any, algorithm: Any = hashlib.sha256, digest: str = "hex") -> Any:
        if not self.ours(secret):
            return _Exchange.hmac(request, secret, algorithm, digest)
        sig = self.sign(request, _hmac_scheme(algorithm), "ccxt's hmac()")
        if digest == "hex":
            return _Exchange.binary_to_base16(sig)
        if digest == "base64":
            return _Exchange.binary_to_base64(sig)
        return sig

    def rsa(self, request: Any, secret: Any, alg: str = "sha256", padding_mode: str = "pkcs1") -> Any:
        if not self.ours(secret):
            return _Exchange.rsa(request, secret, alg, padding_mode)
        if alg != "sha256" or padding_mode != "pkcs1":
            raise IncompatibleError(f"keywardd signs RSA PKCS#1 v1.5 SHA-256, not {alg}/{padding_mode}")
        return _Exchange.binary_to_base64(self.sign(request, Scheme.RSA_PKCS1V15_SHA256, "rsa()"))

    def eddsa(self, request: Any, secret: Any, curve: str = "ed25519", url_encode: bool = False) -> Any:
        if not self.ours(secret):
            return _Exchange.eddsa(request, secret, curve, url_encode)
        if curve != "ed25519":
            raise IncompatibleError(f"keywardd signs Ed25519, not {curve}")
        sig = self.sign(request, Scheme.ED25519, "eddsa()")
        if url_encode:
            return _Exchange.binary_to_urlencoded_base64(sig)
        return _Exchange.binary_to_base64(sig)

    def ecdsa(
        self, request: Any, secret: Any, algorithm: str = "p256", hash: Optional[str] = None,
        fixed_length: bool = False,
    ) -> Any:
        if not self.ours(secret):
            return _Exchange.ecdsa(request, secret, algorithm, hash, fixed_length)
        if algorithm != "p256" or hash != "sha256":
            # hash=None means the request is a digest already: keywardd signs messages only.
            raise IncompatibleError(
                f"keywardd signs ECDSA P-256 over SHA-256 of the message, not {algorithm} "
                f"with hash {hash}"
            )
        r, s = self._es256(request)
        # ccxt also returns the recovery id v, which only Ethereum-style (secp256k1)
        # signatures use; keywardd does not compute it.
        return {"r": "%064x" % r, "s": "%064x" % s, "v": None}

    def _es256(self, request: Any) -> Tuple[int, int]:
        sig = self.sign(request, Scheme.ECDSA_P256_SHA256, "ES256")
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        if s > _P256_ORDER // 2:  # low-s, as ccxt's own ecdsa() returns
            s = _P256_ORDER - s
        return r, s

    def jwt(
        self, request: Any, secret: Any, algorithm: str = "sha256", is_rsa: bool = False,
        opts: Mapping[str, Any] = {},  # noqa: B006 (ccxt's own signature)
    ) -> Any:
        # ccxt's jwt() calls its signing helpers by class name, so it is replaced whole;
        # the token is built exactly as ccxt 4.5 builds it.
        if not self.ours(secret):
            return _Exchange.jwt(request, secret, algorithm, is_rsa, opts)
        alg = ("RS" if is_rsa else "HS") + algorithm[3:]
        if opts.get("alg") is not None:
            alg = opts["alg"]
        header_opts: Dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if opts.get("kid") is not None:
            header_opts["kid"] = opts["kid"]
        if opts.get("nonce") is not None:
            header_opts["nonce"] = opts["nonce"]
        encoded_header = _Exchange.urlencode_base64(_Exchange.encode(_Exchange.json(header_opts)))
        encoded_data = _Exchange.urlencode_base64(_Exchange.encode(_Exchange.json(request)))
        token = encoded_header + "." + encoded_data
        kind = alg[0:2]
        if is_rsa or kind == "RS":
            if algorithm != "sha256":
                raise IncompatibleError(f"keywardd signs RS256 JWTs, not RS{algorithm[3:]}")
            signature = self.sign(token, Scheme.RSA_PKCS1V15_SHA256, "an RS256 JWT")
        elif kind == "ES":
            if algorithm != "sha256":
                raise IncompatibleError(f"keywardd signs ES256 JWTs, not ES{algorithm[3:]}")
            r, s = self._es256(token)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif kind == "Ed":
            signature = self.sign(token.encode("utf-8"), Scheme.ED25519, "an EdDSA JWT")
            return token + "." + _Exchange.binary_to_urlencoded_base64(signature)
        else:
            scheme = _hmac_scheme({"sha256": hashlib.sha256, "sha512": hashlib.sha512}.get(algorithm))
            signature = self.sign(_Exchange.encode(token), scheme, f"an HS{algorithm[3:]} JWT")
        return token + "." + _Exchange.urlencode_base64(signature)


def _hmac_scheme(algorithm: Any) -> Scheme:
    if algorithm is hashlib.sha256:
        return Scheme.HMAC_SHA256
    if algorithm is hashlib.sha512:
        return Scheme.HMAC_SHA512
    name = getattr(algorithm, "__name__", algorithm)
    raise IncompatibleError(f"keywardd signs HMAC-SHA256 and HMAC-SHA512, not HMAC with {name}")


def route_config(
    exchange_class: type,
    key: str,
    config: Optional[Mapping[str, Any]] = None,
    client: Optional[Client] = None,
) -> Dict[str, Any]:
    """The constructor config that makes ``exchange_class`` sign with keyward key ``key``:
    ``config`` with a placeholder ``secret`` and the five hooks, and ``apiKey`` from the
    key's stored API key id unless ``config`` has one."""
    check_ccxt()
    config = dict(config or {})
    secret = config.pop("secret", None)
    if secret is not None and reference(secret) != key:
        raise ValueError(
            "keyward_exchange: the config must not hold a secret (keywardd holds the key); "
            "remove 'secret' or write it as 'keyward:" + key + "'"
        )
    clashing = sorted(set(HOOKS) & set(config))
    if clashing:
        raise ValueError(f"keyward_exchange: the config already sets {', '.join(clashing)}")
    info = lookup(client if client is not None else default_client(), key)
    placeholder = _placeholder(info.scheme, exchange_class)
    router = _Router(client, info, placeholder)
    config["secret"] = placeholder
    if not config.get("apiKey") and info.api_key:
        config["apiKey"] = info.api_key
    for name in HOOKS:
        config[name] = getattr(router, name)
    return config


def _check_routed(exchange: Any, config: Mapping[str, Any]) -> None:
    for name in HOOKS:
        if getattr(exchange, name, None) != config[name]:
            raise IncompatibleError(
                f"{type(exchange).__name__} did not take the signing hook {name} from its "
                f"config: this ccxt ({getattr(ccxt, '__version__', '?')}) constructs "
                "exchanges differently; refusing to run with a placeholder secret"
            )


def keyward_exchange(
    exchange_class: Type[E],
    key: str,
    config: Optional[Mapping[str, Any]] = None,
    client: Optional[Client] = None,
) -> E:
    """``exchange_class(config)``, signing with the keyward key named ``key``.

    ``exchange_class`` is any ccxt exchange class: ``ccxt.binance``,
    ``ccxt.async_support.binance``, ``ccxt.pro.binance``. ``config`` is ccxt's config
    without ``secret``; ``apiKey`` defaults to the API key id stored with the key.
    ``client`` is a blocking :class:`keyward.Client` (default: one shared per process).

    Raises :class:`~keyward.UnknownKeyError` for a key that is not there and
    :class:`~keyward.integrations.IncompatibleError` when the installed ccxt does not sign
    through the expected hooks.
    """
    routed = route_config(exchange_class, key, config, client)
    exchange: E = exchange_class(routed)
    _check_routed(exchange, routed)
    return exchange


# ---- process-wide: exchanges whose config names a keyward key ----

_installed: Optional[Callable[..., None]] = None
_install_lock = threading.Lock()


def install(client: Optional[Client] = None) -> None:
    """From now on, every ccxt exchange constructed in this process with a ``secret``
    written as ``"keyward:<key name>"`` signs with that keyward key, as
    :func:`keyward_exchange` would make it; other exchanges are left alone. For programs
    that build exchanges from a config file (freqtrade). Idempotent; :func:`uninstall`
    undoes it."""
    global _installed
    check_ccxt()
    with _install_lock:
        if _installed is not None:
            return
        original = _Exchange.__init__

        def __init__(self: Any, config: Any = {}) -> None:  # noqa: B006 (ccxt's own default)
            name = reference(config.get("secret")) if isinstance(config, Mapping) else None
            if name is None:
                original(self, config)
                return
            routed = route_config(type(self), name, config, client)
            original(self, routed)
            _check_routed(self, routed)

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        _Exchange.__init__ = __init__
        _installed = original


def uninstall() -> None:
    """Undoes :func:`install` (exchanges already made keep signing through keyward)."""
    global _installed
    with _install_lock:
        if _installed is not None:
            _Exchange.__init__ = _installed
            _installed = None
