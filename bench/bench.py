#!/usr/bin/env python3
"""Produce/consume throughput benchmark for samsa using confluent-kafka.

For each record size: create a fresh 1-partition topic, produce N records
(large batches, acks=1 by default), then consume them all back. Reports
records/s and MB/s per phase, the broker's CPU seconds per phase (from
/proc/PID/stat), and per-record produce latency (delivery report time minus
produce() call time).

Usage (normally via scripts/bench.sh):
    bench.py [--records N] [--sizes 100,1024] [--runs N] [--acks 1|all|0]
             [--bootstrap HOST:PORT [--broker-pid PID]] [--samsa-bin PATH]

Without --bootstrap it starts `samsa serve` itself on a free 127.0.0.1 port
with a temporary data directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka import libversion as rdkafka_libversion
from confluent_kafka import version as ck_version
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
PHASE_TIMEOUT_S = 600


# --- broker process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, proc: subprocess.Popen | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"samsa exited with code {proc.returncode} during startup")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"samsa did not accept connections on {host}:{port} within {timeout}s")


class OwnBroker:
    def __init__(self, binary: str):
        self.tmp = tempfile.mkdtemp(prefix="samsa-bench-")
        self.port = free_port()
        self.log = open(os.path.join(self.tmp, "samsa.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", os.path.join(self.tmp, "data")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_port("127.0.0.1", self.port, self.proc)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- environment -------------------------------------------------------------------


def ck_version_str() -> str:
    v = ck_version()  # a plain string in current releases, (str, int) in older ones
    return v[0] if isinstance(v, tuple) else str(v)


def machine_info(bootstrap: str, samsa_bin: str | None) -> list[str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            rev += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return [
        f"machine:   {os.cpu_count()} CPUs, {model}, kernel {platform.release()}",
        f"versions:  samsa {rev}{' (' + samsa_bin + ')' if samsa_bin else ''}, "
        f"librdkafka {rdkafka_libversion()[0]}, confluent-kafka {ck_version_str()}, Python {platform.python_version()}",
        f"broker:    {bootstrap}",
    ]


# --- phases --------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while name not in a.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            sys.exit(f"topic {name} did not appear in metadata")
        time.sleep(0.05)


def produce_phase(bootstrap: str, topic: str, n: int, size: int, acks: str, pid: int | None) -> dict:
    sent_at = array("d", bytes(8 * n))
    acked_at = array("d", bytes(8 * n))
    state = {"ok": 0, "err": 0, "first_err": None}
    clock = time.perf_counter

    def on_delivery(err, msg):
        if err is not None:
            state["err"] += 1
            state["first_err"] = state["first_err"] or err
            return
        # Fresh single-partition topic: the offset is the record's index.
        acked_at[msg.offset()] = clock()
        state["ok"] += 1

    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "linger.ms": 10,
        "batch.num.messages": 10000,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        "compression.type": "none",
        "enable.idempotence": False,
        "message.timeout.ms": PHASE_TIMEOUT_S * 1000,
        "on_delivery": on_delivery,
    })
    payload = (os.urandom(64) * (size // 64 + 1))[:size]
    produce = p.produce
    poll = p.poll

    cpu0 = cpu_seconds(pid)
    t0 = clock()
    for i in range(n):
        while True:
            try:
                sent_at[i] = clock()
                produce(topic, payload)
                break
            except BufferError:
                poll(0.05)
        if i % 1000 == 999:
            poll(0)
    left = p.flush(PHASE_TIMEOUT_S)
    elapsed = clock() - t0
    cpu1 = cpu_seconds(pid)
    if left or state["err"]:
        sys.exit(f"produce failed: {left} undelivered, {state['err']} errors (first: {state['first_err']})")

    if acks == "0":
        lat = None  # no broker acknowledgement to time
    else:
        lat = sorted(acked_at[i] - sent_at[i] for i in range(n))
    return {
        "elapsed": elapsed,
        "cpu": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "p50_ms": None if lat is None else lat[n // 2] * 1000,
        "p99_ms": None if lat is None else lat[min(n - 1, (n * 99) // 100)] * 1000,
    }


def consume_phase(bootstrap: str, topic: str, n: int, pid: int | None) -> dict:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",  # assign() only; never committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.wait.max.ms": 100,
        "queued.min.messages": 1_000_000,
        "queued.max.messages.kbytes": 1_048_576,
    })
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    nbytes = 0
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while got < n:
        if time.monotonic() > deadline:
            sys.exit(f"consume timed out after {got}/{n} records")
        for m in c.consume(num_messages=10000, timeout=1.0):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                sys.exit(f"consume error: {err}")
            got += 1
            nbytes += len(m)
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_seconds(pid)
    c.close()
    return {"elapsed": elapsed, "cpu": None if cpu0 is None or cpu1 is None else cpu1 - cpu0, "bytes": nbytes}


# --- report --------------------------------------------------------------------------


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records per phase (default 1000000)")
    ap.add_argument("--sizes", default="100,1024", help="comma-separated record value sizes in bytes")
    ap.add_argument("--runs", type=int, default=1, help="repeat each size N times and report medians")
    ap.add_argument("--acks", default="1", choices=["0", "1", "all"], help="producer acks (default 1)")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one")
    ap.add_argument("--broker-pid", type=int, help="PID of the broker at --bootstrap, for CPU accounting")
    ap.add_argument("--samsa-bin", default=str(REPO / "target" / "release" / "samsa"),
                    help="broker binary to start when --bootstrap is not given")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    own = None
    if args.bootstrap:
        bootstrap, pid, samsa_bin = args.bootstrap, args.broker_pid, None
        host, port = bootstrap.rsplit(":", 1)
        wait_port(host, int(port), None)
    else:
        if not os.access(args.samsa_bin, os.X_OK):
            sys.exit(f"{args.samsa_bin} not found; build it with `cargo build --release` or pass --bootstrap")
        own = OwnBroker(args.samsa_bin)
        bootstrap, pid, samsa_bin = own.bootstrap, own.proc.pid, args.samsa_bin

    try:
        for line in machine_info(bootstrap, samsa_bin):
            print(line)
        print(f"workload:  {args.records} records per phase, sizes {sizes} B, acks={args.acks}, "
              f"1 partition, no compression, {args.runs} run(s), medians shown")
        print(flush=True)

        rows = []
        for size in sizes:
            runs = []
            for r in range(args.runs):
                topic = f"bench-{size}b-{r}-{uuid.uuid4().hex[:6]}"
                create_topic(bootstrap, topic)
                prod = produce_phase(bootstrap, topic, args.records, size, args.acks, pid)
                cons = consume_phase(bootstrap, topic, args.records, pid)
                runs.append((prod, cons))
                print(f"  size {size} B run {r + 1}/{args.runs}: produce {prod['elapsed']:.2f}s, "
                      f"consume {cons['elapsed']:.2f}s", file=sys.stderr, flush=True)
            mb = args.records * size / 1e6
            rows.append((
                size,
                median([args.records / p["elapsed"] for p, _ in runs]),
                median([mb / p["elapsed"] for p, _ in runs]),
                median([p["cpu"] for p, _ in runs]),
                median([p["p50_ms"] for p, _ in runs]),
                median([p["p99_ms"] for p, _ in runs]),
                median([args.records / c["elapsed"] for _, c in runs]),
                median([mb / c["elapsed"] for _, c in runs]),
                median([c["cpu"] for _, c in runs]),
            ))

        head = (f"{'size':>6} | {'produce rec/s':>13} {'MB/s':>8} {'cpu s':>7} {'p50 ms':>8} {'p99 ms':>8} | "
                f"{'consume rec/s':>13} {'MB/s':>8} {'cpu s':>7}")
        print(head)
        print("-" * len(head))
        for size, prs, pmb, pcpu, p50, p99, crs, cmb, ccpu in rows:
            print(f"{size:>5}B | {fmt(prs, ',.0f'):>13} {fmt(pmb, '.1f'):>8} {fmt(pcpu, '.2f'):>7} "
                  f"{fmt(p50, '.2f'):>8} {fmt(p99, '.2f'):>8} | "
                  f"{fmt(crs, ',.0f'):>13} {fmt(cmb, '.1f'):>8} {fmt(ccpu, '.2f'):>7}")
        print()
        print("MB/s counts record values only (1 MB = 10^6 bytes); cpu s = broker utime+stime during the phase;")
        print("latency = delivery report time - produce() call time, per record (client queueing included).")
    finally:
        if own is not None:
            own.stop()


if __name__ == "__main__":
    main()
