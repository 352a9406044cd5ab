#!/usr/bin/env bash
# The one test command: unit/property tests, then end-to-end tests that drive
# a real `samsa serve` process with third-party Kafka clients
# (confluent-kafka, kafka-python, kcat). Extra arguments go to pytest,
# e.g. `scripts/test.sh -k kcat -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

echo "==> cargo test --workspace"
cargo test --workspace

echo "==> cargo build --bin samsa"
cargo build --bin samsa

# shellcheck source=scripts/e2e-venv.sh
source scripts/e2e-venv.sh
ensure_e2e_venv

if ! command -v kcat >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing kcat"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
    else
        echo "error: kcat is not installed and this is not root; install it (Debian: apt-get install kcat)" >&2
        exit 1
    fi
fi

echo "==> pytest tests/e2e"
export SAMSA_BIN="$ROOT/target/debug/samsa"
exec "$E2E_PY" -m pytest tests/e2e -q --timeout=120 -o cache_dir="$ROOT/target/pytest-cache" "$@"
