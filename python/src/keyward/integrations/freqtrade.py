"""freqtrade through keywardd: write the exchange's secret in freqtrade's config as a
reference to a keyward key, and start freqtrade through this launcher::

    "exchange": {"name": "binance", "key": "<API key id>", "secret": "keyward:binance-main"}

    keyward-freqtrade trade --config config.json     # was: freqtrade trade --config ...
    python -m keyward.integrations.freqtrade trade --config config.json

freqtrade builds its ccxt objects from that JSON config (``Exchange._init_ccxt``), where no
callable can be written, so the launcher calls :func:`keyward.integrations.ccxt.install`
first: every ccxt exchange constructed with a ``keyward:`` secret then signs through keywardd
(the sync object and the async/pro ones freqtrade makes alike), and the secret never exists
in the process. Then it runs freqtrade's own entry point with the same arguments.
"""

import sys
from typing import List, Optional

from . import ccxt as _ccxt

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> None:
    """``freqtrade <argv>`` (default: this process's arguments), with keyward references
    in exchange secrets routed to keywardd."""
    _ccxt.install()
    from freqtrade.main import main as freqtrade_main

    freqtrade_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
