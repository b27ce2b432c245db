#!/usr/bin/env bash
# Runs the integration tests, each set of libraries in its own virtualenv: python-binance and
# binance-connector both install a top-level package named `binance`, and ccxt needs another
# cryptography than the main test environment. Each environment is made from
# python/requirements-integrations-<env>.txt; $KEYWARD_INTEGRATIONS=<env> makes a test module
# whose library is missing fail instead of skip.
#
#   python/tests/integrations/run-envs.sh [env...]     # default: all of them
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=${KEYWARD_INTEGRATION_VENVS:-${TMPDIR:-/tmp}/keyward-integration-venvs}
envs=("$@")
if [ ${#envs[@]} -eq 0 ]; then
    envs=(ccxt python-binance binance-connector)
fi
for env in "${envs[@]}"; do
    venv="$root/$env"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "python/requirements-integrations-$env.txt"
    echo "== integration tests: $env"
    KEYWARD_INTEGRATIONS="$env" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        python/tests/integrations
done
