#!/usr/bin/env python3
"""Resident memory of a broker holding many idle client connections.

Starts `SAMSA_BIN serve` on a free loopback port, opens N connections that
each send one ApiVersions request and read its answer (as a client does on
connecting), leaves them idle, and prints the broker's VmRSS before and
after, and per connection. The file-descriptor limit of both processes is
raised to the hard limit.

    python3 bench/idle_connections.py target/release/samsa [N] [--silent]

With --silent the connections send nothing.
"""

import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time


def raise_fd_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def api_versions(correlation_id):
    client = b"idle"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    return struct.pack(">i", len(body)) + body


def read_answer(sock):
    stream = sock.makefile("rb")
    head = stream.read(4)
    if len(head) < 4:
        raise ConnectionError("closed")
    (size,) = struct.unpack(">i", head)
    body = stream.read(size)
    if len(body) < size:
        raise ConnectionError("closed")
    return body


def main():
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    silent = "--silent" in sys.argv[3:]
    raise_fd_limit()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=raise_fd_limit,
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    probe = socket.create_connection(("127.0.0.1", port))
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
            probe.sendall(api_versions(0))
            read_answer(probe)
            time.sleep(1)
            before = rss_kib(broker.pid)
            conns = []
            for i in range(count):
                s = socket.create_connection(("127.0.0.1", port))
                if not silent:
                    s.sendall(api_versions(i + 1))
                conns.append(s)
            if not silent:
                for s in conns:
                    read_answer(s)
            # Past one of the broker's 5 s heap trims.
            time.sleep(6)
            after = rss_kib(broker.pid)
            # Every connection is still open and served.
            for i, s in enumerate(conns):
                s.sendall(api_versions(count + i + 1))
            for s in conns:
                read_answer(s)
            print(
                f"{count} idle connections{' (silent)' if silent else ''}: RSS {before / 1024:.1f} MiB -> "
                f"{after / 1024:.1f} MiB, {(after - before) / count:.2f} KiB per connection"
            )
            for s in conns:
                s.close()
        finally:
            broker.terminate()
            broker.wait(timeout=30)


if __name__ == "__main__":
    main()
