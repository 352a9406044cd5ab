"""An idempotent producer (confluent-kafka, enable.idempotence=true) across kill -9
rounds while segments roll every second or so: zero duplicates and zero
acknowledged records lost, checked record by record (cluster.check_log: every
acknowledged value exactly once, at the offset its delivery report gave, dense
offsets, send order kept per partition).

The producer's retries after a crash carry the sequence numbers of batches the
dead broker may already have stored. The broker that answers them (the new
leader, or the restarted node) must recognise them even when the original sits
in a segment that is no longer the active one: producer state lives with the
log and survives rolls, restarts and elections (producer-state snapshots,
followers recording what they replicate).

A deterministic reproduction (raw Produce requests) checks the one case the
rounds hit only by chance: a retry whose original sits in an older segment.

SAMSA_E2E_IDEMPOTENT_ROUNDS sets the kill -9 rounds of each test (default 10).
"""

from __future__ import annotations

import os
import time

import pytest

import helpers as h
import kafka_wire as kw
from cluster import POST_KILL_GUARD_S, Workload, check_log, cluster_fixture, log

ROUNDS = int(os.environ.get("SAMSA_E2E_IDEMPOTENT_ROUNDS", "10"))
# A record of the workload is ~80 bytes stored; at ~100 records/s per partition
# a 2 KiB segment rolls about every half second. (The topic-level segment.bytes
# has Kafka's 1 MiB minimum; the broker default log.segment.bytes does not.)
SEGMENT_BYTES = "2048"
RATE = 300.0


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def check(w: Workload, bootstrap: str, what: str) -> None:
    # Raises on any acknowledged record lost or not at its offset, any value
    # stored twice, any gap, any reordering.
    rep = check_log(w, bootstrap)
    print(f"\n{what}: {rep.summary()}; producer errors {w.error_summary()}")


def segments_rolled(data_dir, topic: str) -> int:
    """Segment files of partition 0 on one node."""
    return len(list((data_dir / f"{topic}-0").glob("*.log")))


@pytest.mark.timeout(240)
def test_idempotent_producer_across_leader_kills_with_rolling_segments(cluster_factory):
    """3 nodes, rf=3: each round kill -9 the leader of one partition, wait for
    the new leader to acknowledge traffic, restart the killed node."""
    c = cluster_factory(3, overrides={"log.segment.bytes": SEGMENT_BYTES})
    topic = h.unique_topic("idem-leader")
    c.create_topic(topic, 3)
    w = Workload(c.bootstrap, topic, 3, idempotence=True, rate=RATE).start()
    w.wait_acks_since(0, n=100, what="before the first round")
    for r in range(ROUNDS):
        p = r % 3
        c.wait_isr_full(topic, range(3))
        leader = c.leader_of(topic, p)
        c.kill9(leader)
        t_dead = time.monotonic() + POST_KILL_GUARD_S
        first = w.wait_acks_since(t_dead, partition=p, timeout=30,
                                  what=f"after kill -9 of its leader {leader} (round {r})")[0]
        w.wait_acks_since(first.at, partition=p, n=30, timeout=30, what=f"on the new leader (round {r})")
        c.restart(leader)
        log(f"round {r}: partition {p} leader {leader} killed; acked so far {w.acked_count()}")
    c.wait_isr_full(topic, range(3))
    w.wait_acks_since(time.monotonic(), n=30, what="after the last round")
    w.stop()
    check(w, c.bootstrap, f"{ROUNDS} leader kill -9 rounds, log.segment.bytes={SEGMENT_BYTES}")
    rolled = min(segments_rolled(n.data_dir, topic) for n in c.nodes.values())
    assert rolled >= 2 * ROUNDS, f"only {rolled} segments: they did not roll every few seconds"


@pytest.mark.timeout(240)
def test_idempotent_producer_across_single_node_kills_with_rolling_segments(broker_factory):
    """One node: each round kill -9 the whole broker while the producer has
    batches in flight, and start it again on the same data directory."""
    b = broker_factory(f"log.segment.bytes={SEGMENT_BYTES}")
    topic = h.unique_topic("idem-node")
    h.create_topic(h.admin(b.bootstrap), topic, partitions=3)
    w = Workload(b.bootstrap, topic, 3, idempotence=True, rate=RATE).start()
    w.wait_acks_since(0, n=100, what="before the first round")
    for r in range(ROUNDS):
        # Enough traffic since the last restart for segments to have rolled.
        w.wait_acks_since(time.monotonic(), n=300, timeout=30, what=f"before round {r}")
        b.kill()
        log(f"round {r}: kill -9 of the node; acked so far {w.acked_count()}")
        b.start()
    w.wait_acks_since(time.monotonic(), n=30, what="after the last round")
    w.stop()
    check(w, b.bootstrap, f"{ROUNDS} single-node kill -9 rounds, log.segment.bytes={SEGMENT_BYTES}")
    rolled = segments_rolled(b.data_dir, topic)
    assert rolled >= 2 * ROUNDS, f"only {rolled} segments: they did not roll every few seconds"


def produce_raw(bootstrap: str, topic: str, batch: bytes) -> tuple[int, int]:
    """One Produce v3 (acks=all) of ``batch`` to partition 0: (error code, base offset)."""
    s = kw.connect(bootstrap)
    try:
        frame = kw.roundtrip(s, kw.produce_v3_request(1, topic, 0, batch))
        assert frame is not None, "no answer to Produce"
        res = kw.parse_produce_v3(frame)[1][(topic, 0)]
        return res.error_code, res.base_offset
    finally:
        s.close()


@pytest.mark.timeout(120)
def test_retry_of_a_batch_in_an_older_segment_is_a_duplicate_after_kill9(broker_factory):
    """The issue's reproduction: an idempotent batch (sequence 0) at offset 0,
    3 MB of other records after it with 1 MiB segments, kill -9, restart, the
    same batch sent again: answered with its original offset 0, not stored
    a second time (it was stored again at offset 30010 before producer state
    outlived the active segment)."""
    b = broker_factory("log.segment.bytes=1048576")
    topic = h.unique_topic("idem-retry")
    h.create_topic(h.admin(b.bootstrap), topic, partitions=1)
    once = kw.simple_batch([b"once"], producer=(4242, 0, 0))
    assert produce_raw(b.bootstrap, topic, once) == (0, 0)
    filler = [b"x" * 100] * 1000
    for _ in range(30):
        err, _ = produce_raw(b.bootstrap, topic, kw.simple_batch(filler))
        assert err == 0
    assert len(list((b.data_dir / f"{topic}-0").glob("*.log"))) >= 3, "segments rolled"
    end = h.watermarks(b.bootstrap, topic)[1]
    b.kill()
    b.start()
    assert produce_raw(b.bootstrap, topic, once) == (0, 0), "the retry gets its original offset"
    assert h.watermarks(b.bootstrap, topic)[1] == end, "the retry was stored again"
    # The producer goes on after its last batch; a gap is refused (OUT_OF_ORDER_SEQUENCE_NUMBER).
    assert produce_raw(b.bootstrap, topic, kw.simple_batch([b"next"], producer=(4242, 0, 1))) == (0, end)
    assert produce_raw(b.bootstrap, topic, kw.simple_batch([b"gap"], producer=(4242, 0, 5)))[0] == 45
