"""What the integration tests share: importing the library under test, and freezing a
library's clock and randomness so that two requests can be compared byte for byte.

Each library is tested in its own environment (python/tests/integrations/run-envs.sh makes
them from python/requirements-integrations-*.txt). A test module whose library is missing is
skipped, unless $KEYWARD_INTEGRATIONS names that environment: then it fails, so an
environment that lost its library cannot pass by skipping."""

import importlib
import os
from types import ModuleType

import pytest

REQUIRED_ENV = "KEYWARD_INTEGRATIONS"

FROZEN_MS = 1_700_000_000_123


def require(module: str, env: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if env in os.environ.get(REQUIRED_ENV, "").split(","):
            raise AssertionError(f"{REQUIRED_ENV} requires {module}, which is missing: {err}")
        pytest.skip(
            f"{module} is not installed (pip install -r python/requirements-integrations-"
            f"{env}.txt)",
            allow_module_level=True,
        )


def freeze_ccxt(exchange):
    """The clock and the random ids of one ccxt exchange object, fixed."""
    exchange.milliseconds = lambda: FROZEN_MS
    exchange.seconds = lambda: FROZEN_MS // 1000
    exchange.microseconds = lambda: FROZEN_MS * 1000
    exchange.uuid = lambda: "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    exchange.uuid22 = lambda length=22: "a" * length
    exchange.uuid16 = lambda length=16: "b" * length
    exchange.random_bytes = lambda length: "c" * (2 * length)
    return exchange
