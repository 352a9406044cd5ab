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

SAMSA_E2E_IDEMPOTENT_ROUNDS sets the kill -9 rounds of each test (default 10).
"""

from __future__ import annotations

import os
import time

import pytest

import helpers as h
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
