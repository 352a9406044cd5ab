"""samsa driven by kcat, the command-line Kafka client (its own librdkafka build)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

import helpers as h

KCAT_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if not path:
        pytest.fail("kcat is not on PATH (scripts/test.sh installs it: apt-get install kcat)", pytrace=False)
    return path


def run(kcat: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([kcat, *args], input=stdin, capture_output=True, text=True, timeout=KCAT_TIMEOUT_S)
    assert p.returncode == 0, f"kcat {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def consume(kcat: str, bootstrap: str, topic: str, *extra: str, fmt: str = "%k:%s\\n") -> str:
    return run(kcat, "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", fmt, *extra).stdout


LINES = [
    "alpha:first value",
    "beta:second value",
    "alpha:third: with colons",
    "gamma:{\"json\": true}",
    "delta:",
    "beta:sixth",
]


def test_metadata_listing(kcat, broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("kcat-meta")
    h.create_topic(a, t, partitions=2)

    out = run(kcat, "-b", broker.bootstrap, "-L").stdout
    assert f"broker 1 at 127.0.0.1:{broker.port}" in out, out
    assert f'topic "{t}" with 2 partitions:' in out, out

    md = json.loads(run(kcat, "-b", broker.bootstrap, "-L", "-J").stdout)
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, f"127.0.0.1:{broker.port}")]
    topic = next(x for x in md["topics"] if x["topic"] == t)
    assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1]
    assert all(p["leader"] == 1 for p in topic["partitions"])


def test_produce_keyed_lines_and_read_back_exactly(kcat, broker):
    t = h.unique_topic("kcat-rt")
    # Producing to a topic that does not exist yet auto-creates it.
    run(kcat, "-P", "-b", broker.bootstrap, "-t", t, "-K:", stdin="\n".join(LINES) + "\n")
    out = consume(kcat, broker.bootstrap, t, "-o", "beginning")
    assert out == "".join(line + "\n" for line in LINES)

    # A second kcat producer appends after the first batch.
    run(kcat, "-P", "-b", broker.bootstrap, "-t", t, "-K:", stdin="omega:last\n")
    out = consume(kcat, broker.bootstrap, t, "-o", "beginning", fmt="%o %k=%s\\n")
    expected = [f"{i} {line.replace(':', '=', 1)}" for i, line in enumerate(LINES + ["omega:last"])]
    assert out.splitlines() == expected


def test_offsets(kcat, broker):
    t = h.unique_topic("kcat-off")
    run(kcat, "-P", "-b", broker.bootstrap, "-t", t, "-K:", stdin="\n".join(LINES) + "\n")
    expect = [line + "\n" for line in LINES]

    assert consume(kcat, broker.bootstrap, t, "-o", "-2") == "".join(expect[-2:])      # 2 before the end
    assert consume(kcat, broker.bootstrap, t, "-o", "3") == "".join(expect[3:])        # absolute offset
    assert consume(kcat, broker.bootstrap, t, "-o", "end") == ""
    assert consume(kcat, broker.bootstrap, t, "-o", "beginning", "-c", "2") == "".join(expect[:2])


def test_timestamp_offset(kcat, broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("kcat-ts")
    h.create_topic(a, t)
    t0 = int(time.time() * 1000) - 120_000
    p = h.producer(broker.bootstrap, acks="all")
    log = h.produce_and_flush(p, [dict(key=f"k{i}".encode(), value=f"v{i}".encode(), timestamp=t0 + 1000 * i)
                                  for i in range(6)], t)
    assert not log.errors

    out = consume(kcat, broker.bootstrap, t, "-o", f"s@{t0 + 2500}", fmt="%o %T %k:%s\\n")
    assert out.splitlines() == [f"{i} {t0 + 1000 * i} k{i}:v{i}" for i in range(3, 6)]
    out = consume(kcat, broker.bootstrap, t, "-o", f"s@{t0}")
    assert out.splitlines() == [f"k{i}:v{i}" for i in range(6)]
