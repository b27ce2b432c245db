"""Exchange helpers: each builds the exact string an exchange signs, has keywardd sign it with
a key it holds, and returns what the exchange expects (a signed query, headers, a JWT).

One module per exchange: :mod:`~keyward.exchanges.binance`, :mod:`~keyward.exchanges.bybit`,
:mod:`~keyward.exchanges.okx`, :mod:`~keyward.exchanges.kucoin`,
:mod:`~keyward.exchanges.bitget`, :mod:`~keyward.exchanges.kraken`,
:mod:`~keyward.exchanges.coinbase`. Each helper takes a client and a key name first, then the
request parts; each has an ``_async`` twin for :class:`keyward.AsyncClient`.

The strings are the ones the daemon's payload rules parse (docs/POLICY.md): a key with rules
signs a helper's output and refuses a payload in another shape. Request parts the daemon
would refuse raise :class:`ValueError` here, before anything is sent. Helpers that send an
API key id take ``api_key=`` per call and otherwise use the key's stored one.
docs/EXCHANGES.md says which key types each exchange takes and how to register them.
"""

from . import binance, bitget, bybit, coinbase, kraken, kucoin, okx

__all__ = ["binance", "bitget", "bybit", "coinbase", "kraken", "kucoin", "okx"]
