"""A failed log directory (KIP-858): with two `log.dirs`, one directory
replaced by a regular file takes only its partitions offline. A single node
answers KAFKA_STORAGE_ERROR for them (confluent-kafka sees it) and keeps
serving the other directory's partitions, and `samsa log-dirs` shows the
directory failed; in a 3-node cluster leadership moves off the failed
broker's replicas in that directory and they leave the ISR, while its
replicas in the other directory stay in sync, and nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

import helpers as h
from cluster import Workload, check_log, cluster_fixture
from conftest import samsa_bin
from test_jbod import run_jbod

CHECKPOINT_MS = "200"


@pytest.fixture
def jbod(request, tmp_path):
    yield from run_jbod(request, tmp_path,
                        [f"replica.high.watermark.checkpoint.interval.ms={CHECKPOINT_MS}"])


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def break_dir(d: Path) -> None:
    """The directory disappears and a regular file takes its place: its
    partitions' files stay reachable only through descriptors already open."""
    d.rename(d.with_name(d.name + ".gone"))
    d.write_bytes(b"not a directory")


def send_one(bootstrap: str, topic: str, partition: int) -> KafkaError | None:
    """One record, no retries: the broker's own answer."""
    p = h.producer(bootstrap, acks="all", retries=0, **{"message.timeout.ms": 10000})
    errors = []
    p.produce(topic, value=b"probe", partition=partition,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1, "a delivery report"
    return errors[0]


@pytest.mark.timeout(120)
def test_a_failed_log_dir_takes_only_its_partitions_offline(jbod):
    b = jbod
    a = h.admin(b.bootstrap)
    topic = h.unique_topic("dirfail")
    h.create_topic(a, topic, partitions=2)
    d1, d2 = b.dirs
    h.wait_until(lambda: (d1 / f"{topic}-0").is_dir() and (d2 / f"{topic}-1").is_dir(),
                 message="one partition in each log directory")
    p = h.producer(b.bootstrap, acks="all")
    log = h.produce_and_flush(p, [{"value": f"before-{i}".encode(), "partition": i % 2}
                                  for i in range(20)], topic)
    assert not log.errors, log.errors

    break_dir(d2)

    # The first writes still land in the open segment; the directory's next
    # high-watermark checkpoint finds it gone and takes it offline.
    def storage_error():
        err = send_one(b.bootstrap, topic, 1)
        return err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR
    h.wait_until(storage_error, timeout=30, interval=0.2,
                 message="KAFKA_STORAGE_ERROR for the failed directory's partition")

    # The other directory keeps serving: produce and read back.
    log = h.produce_and_flush(p, [{"value": f"after-{i}".encode(), "partition": 0}
                                  for i in range(10)], topic)
    assert not log.errors, log.errors
    got = h.consume_partitions(b.bootstrap, topic, [0])[0]
    values = [r.value for r in got]
    assert values == [f"before-{i}".encode() for i in range(0, 20, 2)] + \
        [f"after-{i}".encode() for i in range(10)]

    # kafka-log-dirs.sh's view: the failed directory has an error and no partitions.
    r = subprocess.run([samsa_bin(), "log-dirs", "--describe", "--bootstrap-server", b.bootstrap,
                        "--broker-list", "1"], capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    doc = json.loads(r.stdout.splitlines()[2])
    dirs = {d["logDir"]: d for d in doc["brokers"][0]["logDirs"]}
    assert dirs[str(d2)]["error"] is not None and "KAFKA_STORAGE_ERROR" in dirs[str(d2)]["error"], doc
    assert dirs[str(d2)]["partitions"] == [], doc
    assert dirs[str(d1)]["error"] is None, doc
    assert [x["partition"] for x in dirs[str(d1)]["partitions"]
            if x["partition"].startswith(topic)] == [f"{topic}-0"], doc

    # A new topic's replicas all go to the directory that works.
    t2 = h.unique_topic("dirfail-new")
    h.create_topic(a, t2, partitions=2)
    h.wait_until(lambda: (d1 / f"{t2}-0").is_dir() and (d1 / f"{t2}-1").is_dir(),
                 message="the new topic's partitions in the working directory")
    assert send_one(b.bootstrap, t2, 1) is None
    assert b.alive(), "the broker keeps running"


@pytest.mark.timeout(240)
def test_leadership_moves_off_a_failed_log_dir_in_a_cluster(cluster_factory):
    c = cluster_factory(overrides={
        # Relative to each node's working directory: two log dirs per node.
        "log.dirs": "d1,d2",
        "replica.high.watermark.checkpoint.interval.ms": CHECKPOINT_MS,
    })
    topic = h.unique_topic("dirfail-cluster")
    partitions = 6
    c.create_topic(topic, partitions=partitions)
    full = c.wait_isr_full(topic, range(partitions))

    def in_d2(node: int, p: int) -> bool:
        return (c.nodes[node].workdir / "d2" / f"{topic}-{p}").is_dir()

    # A node leading at least one partition whose replica there is in d2
    # (d1 also holds the metadata log: it stays healthy).
    victim = next((n for n in c.ids
                   if any(full[p].leader == n and in_d2(n, p) for p in range(partitions))), None)
    assert victim is not None, f"no leader with a replica in d2: {full}"
    failed = [p for p in range(partitions) if in_d2(victim, p)]
    healthy = [p for p in range(partitions) if p not in failed]
    assert healthy, "the victim keeps replicas in d1"

    w = Workload(c.bootstrap, topic, partitions, rate=200).start()
    time.sleep(1.0)
    break_dir(c.nodes[victim].workdir / "d2")

    for p in failed:
        others = set(full[p].replicas) - {victim}
        st = c.wait_isr(topic, p, others, timeout=60)
        assert st.leader in others, (p, st)
    for p in healthy:
        st = c.views()[victim].partition(topic, p)
        assert victim in st.isr, f"{topic}-{p}: the replica in the working directory stays in sync: {st}"
    t = time.monotonic()
    w.wait_acks_since(t, n=partitions * 20)
    w.stop()
    assert c.nodes[victim].alive(), "the broker with the failed directory keeps running"
    check_log(w, c.bootstrap)
