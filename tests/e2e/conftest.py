"""Fixtures for the end-to-end tests: a real samsa broker process per test.

Every test gets its own broker on a free 127.0.0.1 port with its own data
directory, so topic names only need to be unique within a test. The broker
binary comes from $SAMSA_BIN (scripts/test.sh builds it and sets it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_BYTES = 20_000


_PORTS_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this run: the kernel
    may give a just-released port again, and two roles of one node (say its
    Kafka and HTTP listeners) must not get the same one."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh free port")


def samsa_bin() -> str:
    path = os.environ.get("SAMSA_BIN")
    if not path:
        pytest.fail("SAMSA_BIN is not set; run the suite through scripts/test.sh "
                    "(or build with `cargo build --bin samsa` and export SAMSA_BIN=target/debug/samsa)",
                    pytrace=False)
    p = Path(path)
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"SAMSA_BIN={path} is not an executable file; build it first with "
                    "`cargo build --bin samsa`", pytrace=False)
    return str(p.resolve())


class BrokerError(AssertionError):
    pass


class Broker:
    """One `samsa serve` process. Restarts keep the port and the data directory."""

    def __init__(self, binary: str, workdir: Path, sets: list[str], name: str = "broker"):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.sets = list(sets)
        self.port = free_port()
        self.http_port = free_port()  # /metrics and /health
        self.host = "127.0.0.1"
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}-stderr.log"
        self.proc: subprocess.Popen | None = None
        self._expected_exit = True  # nothing running yet
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "broker not started"
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [self.binary, "serve", "--listen", self.bootstrap, "--data-dir", str(self.data_dir),
               "--set", f"http.listeners=http://127.0.0.1:{self.http_port}"]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd

    def start(self) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.workdir, start_new_session=True,
            )
        self._expected_exit = False
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            code = self.proc.poll()
            if code is not None:
                self._expected_exit = True
                raise BrokerError(f"samsa exited with code {code} during startup\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerError(f"samsa did not accept TCP on {self.bootstrap} within "
                                  f"{STARTUP_TIMEOUT_S:.0f}s\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            raise BrokerError(f"samsa is not running (exit code {code})\n{self.log_tail()}")

    def stop(self) -> int:
        """Clean shutdown: SIGTERM, wait, and require exit status 0."""
        self.assert_alive()
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill_group()
            raise BrokerError(f"samsa did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM\n{self.log_tail()}")
        if code != 0:
            raise BrokerError(f"samsa exited with code {code} after SIGTERM (want 0)\n{self.log_tail()}")
        return code

    def kill(self) -> None:
        """Crash: SIGKILL, no chance to flush anything."""
        self.assert_alive()
        self._expected_exit = True
        self._kill_group()

    def _kill_group(self) -> None:
        # The broker runs in its own session/process group; take down anything
        # it may have spawned too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def restart(self) -> "Broker":
        if self.alive():
            self.stop()
        return self.start()

    def _status_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise BrokerError(f"{field} not found in /proc/{self.pid}/status")

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def peak_rss_kib(self) -> int:
        """High-water mark of resident memory since start (catches transient spikes)."""
        return self._status_kib("VmHWM")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "(no broker log)"
        if len(data) > limit:
            data = b"...(truncated)...\n" + data[-limit:]
        return f"--- {self.log_path} ---\n" + data.decode("utf-8", "replace")

    def teardown(self) -> str | None:
        """Kill the process if still running. Returns a complaint if it had died
        on its own while the test thought it was running."""
        complaint = None
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None and not self._expected_exit:
                complaint = f"samsa died unexpectedly during the test (exit code {code})"
            if code is None:
                self._kill_group()
        return complaint


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "_samsa_brokers", []):
            rep.sections.append((f"samsa stderr ({b.name}, port {b.port})", b.log_tail()))


@pytest.fixture
def broker_factory(request, tmp_path):
    """Start a broker with extra `--set key=value` options:
    ``broker_factory("num.partitions=3")``."""
    binary = samsa_bin()
    brokers: list[Broker] = []
    request.node._samsa_brokers = brokers

    def make(*sets: str, name: str | None = None) -> Broker:
        name = name or f"broker{len(brokers)}"
        b = Broker(binary, tmp_path / name, list(sets), name=name)
        brokers.append(b)
        return b.start()

    yield make

    complaints = [c for c in (b.teardown() for b in brokers) if c]
    if complaints:
        pytest.fail("; ".join(complaints) + "\n" + "\n".join(b.log_tail() for b in brokers), pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()
