# Sourced by scripts/test.sh and scripts/bench.sh: provides ensure_e2e_venv,
# which creates target/e2e-venv (if needed) with tests/e2e/requirements.txt
# installed and sets E2E_PY to its python. Reinstalls only when the
# requirements file or the base interpreter changes (hash stamp).

ensure_e2e_venv() {
    local root venv req stamp want
    root=$(pwd)
    venv="$root/target/e2e-venv"
    req="$root/tests/e2e/requirements.txt"
    stamp="$venv/.requirements.sha256"
    want="$( (cat "$req"; python3 -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"

    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$venv/bin/python" -c 'import confluent_kafka, kafka, pytest' 2>/dev/null; then
        E2E_PY="$venv/bin/python"
        return 0
    fi

    echo "==> creating $venv"
    rm -rf "$venv"
    mkdir -p "$root/target"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's system python ships venv/ensurepip separately.
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "==> python3 -m venv failed; installing python3-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            rm -rf "$venv"
            python3 -m venv "$venv"
        else
            echo "error: 'python3 -m venv' failed; install the python3-venv package" >&2
            return 1
        fi
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$venv/bin/python" -m pip install -q -r "$req"
    echo "$want" > "$stamp"
    E2E_PY="$venv/bin/python"
}
