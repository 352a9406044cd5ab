#!/usr/bin/env bash
# Throughput benchmark: builds the release broker, starts it on a free
# 127.0.0.1 port with a fresh temporary data directory, runs bench/bench.py
# against it (arguments are passed through, e.g. --records 200000 --runs 3
# --acks all), then stops the broker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

echo "==> cargo build --release" >&2
cargo build --release --bin samsa

# shellcheck source=scripts/e2e-venv.sh
source scripts/e2e-venv.sh
ensure_e2e_venv >&2

TMP=$(mktemp -d -t samsa-bench.XXXXXX)
PORT=$("$E2E_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROOT/target/release/samsa" serve --listen "127.0.0.1:$PORT" --data-dir "$TMP/data" 2>"$TMP/samsa.log" &
PID=$!

cleanup() {
    if kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    wait "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "error: samsa exited during startup:" >&2
        cat "$TMP/samsa.log" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

"$E2E_PY" bench/bench.py --bootstrap "127.0.0.1:$PORT" --broker-pid "$PID" "$@"

kill -TERM "$PID"
set +e
wait "$PID"
RC=$?
set -e
if [[ $RC -ne 0 ]]; then
    echo "warning: samsa exited with code $RC after SIGTERM; log: " >&2
    tail -20 "$TMP/samsa.log" >&2
fi
