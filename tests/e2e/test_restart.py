"""Data written through real clients survives a clean restart and a SIGKILL."""

from __future__ import annotations

import time

import pytest

import helpers as h


def produce_keyed(bootstrap: str, topic: str, n: int, start: int = 0, value_size: int = 100):
    """Produce ``n`` keyed records with explicit timestamps and acks=all;
    returns the delivery log (every record acknowledged)."""
    t0 = int(time.time() * 1000) - 60_000
    items = []
    for i in range(start, start + n):
        body = f"value-{i}-".encode()
        items.append(dict(key=f"key-{i % 11}".encode(),
                          value=(body * (value_size // len(body) + 1))[:value_size],
                          timestamp=t0 + i,
                          headers=[("i", str(i).encode())]))
    log = h.produce_and_flush(h.producer(bootstrap, acks="all"), items, topic)
    assert not log.errors, log.errors[:3]
    assert len(log.ok) == n
    return log


def snapshot(bootstrap: str, topic: str, partitions: int):
    """Everything in the topic as comparable tuples, per partition."""
    got = h.consume_partitions(bootstrap, topic, list(range(partitions)))
    return {p: [(r.offset, r.key, r.value, r.timestamp, r.headers) for r in recs] for p, recs in got.items()}


def high_watermarks(bootstrap: str, topic: str, partitions: int):
    return {p: h.watermarks(bootstrap, topic, p)[1] for p in range(partitions)}


def small_segment_topic(broker_factory, prefix: str, partitions: int):
    """A broker with 1 MiB segments (Kafka's smallest), so a few MB of data
    span several segment files, and a new topic on it: (broker, admin, topic)."""
    b = broker_factory("log.segment.bytes=1048576")
    a = h.admin(b.bootstrap)
    t = h.unique_topic(prefix)
    h.create_topic(a, t, partitions=partitions)
    return b, a, t


def test_clean_restart_keeps_everything(broker_factory):
    b, a, t = small_segment_topic(broker_factory, "restart", 3)
    log = produce_keyed(b.bootstrap, t, 4000, value_size=1000)

    before = snapshot(b.bootstrap, t, 3)
    assert sum(len(v) for v in before.values()) == 4000
    # What the client was told at produce time matches what is stored.
    acked = {(d.partition, d.offset): (d.key, d.value, d.timestamp) for d in log.ok}
    assert {(p, o): (k, v, ts) for p, recs in before.items() for o, k, v, ts, _ in recs} == acked
    hw_before = high_watermarks(b.bootstrap, t, 3)

    b.stop()
    b.start()

    assert h.topic_partitions(a, t) == 3
    after = snapshot(b.bootstrap, t, 3)
    assert after == before
    assert high_watermarks(b.bootstrap, t, 3) == hw_before

    # New records continue right after the old ones.
    log2 = produce_keyed(b.bootstrap, t, 30, start=4000)
    for d in log2.ok:
        assert d.offset >= hw_before[d.partition]
    for p in range(3):
        offs = sorted(d.offset for d in log2.ok if d.partition == p)
        assert offs == list(range(hw_before[p], hw_before[p] + len(offs)))


def test_sigkill_keeps_acknowledged_records(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("crash")
    h.create_topic(a, t, partitions=2)
    log = produce_keyed(broker.bootstrap, t, 500)
    acked = sorted((d.partition, d.offset, d.key, d.value) for d in log.ok)
    hw = {p: 1 + max((d.offset for d in log.ok if d.partition == p), default=-1) for p in range(2)}

    broker.kill()
    broker.start()

    after = snapshot(broker.bootstrap, t, 2)
    stored = sorted((p, o, k, v) for p, recs in after.items() for o, k, v, _ts, _hd in recs)
    assert stored == acked, "acknowledged records lost or changed by SIGKILL + restart"
    assert high_watermarks(broker.bootstrap, t, 2) == hw

    # Producing continues at the right offsets, and the result survives another crash.
    p = h.producer(broker.bootstrap, acks="all")
    log2 = h.produce_and_flush(p, [dict(value=f"after-{i}".encode(), partition=i % 2) for i in range(10)], t)
    assert not log2.errors
    for part in range(2):
        offs = sorted(d.offset for d in log2.ok if d.partition == part)
        assert offs == list(range(hw[part], hw[part] + 5))

    broker.kill()
    broker.start()
    final = snapshot(broker.bootstrap, t, 2)
    assert sum(len(v) for v in final.values()) == 510


def test_sigkill_right_after_segment_rolls_keeps_acknowledged_records(broker_factory):
    # ~6 MB rolls several 1 MiB segments, and the kill comes before the
    # background sync of the last rolled ones (rolls do not fsync).
    b, _, t = small_segment_topic(broker_factory, "rollcrash", 1)
    log = produce_keyed(b.bootstrap, t, 6000, value_size=1000)
    acked = sorted((d.offset, d.key, d.value) for d in log.ok)
    assert [o for o, _, _ in acked] == list(range(6000))

    b.kill()
    b.start()
    stored = sorted((o, k, v) for o, k, v, _ts, _hd in snapshot(b.bootstrap, t, 1)[0])
    assert stored == acked, "acknowledged records lost or changed by SIGKILL after segment rolls"

    # Appends continue after the last record, across more rolls and another crash.
    log2 = produce_keyed(b.bootstrap, t, 3000, start=6000, value_size=1000)
    assert sorted(d.offset for d in log2.ok) == list(range(6000, 9000))
    b.kill()
    b.start()
    final = snapshot(b.bootstrap, t, 1)[0]
    assert [r[0] for r in final] == list(range(9000))


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_topics_and_deletions_survive_restart(broker, how):
    a = h.admin(broker.bootstrap)
    keep = h.unique_topic("keep")
    gone = h.unique_topic("gone")
    h.create_topic(a, keep, partitions=2)
    h.create_topic(a, gone, partitions=1)
    p = h.producer(broker.bootstrap, acks="all")
    assert not h.produce_and_flush(p, [dict(value=b"k", partition=1)], keep).errors
    assert not h.produce_and_flush(p, [dict(value=f"g{i}".encode()) for i in range(5)], gone).errors
    # A live producer that knows the topic asks for its metadata again after
    # the restart, which auto-creates it (as in Kafka) and races the
    # re-creation below: close it first.
    del p

    a.delete_topics([gone], operation_timeout=10)[gone].result(timeout=h.CLIENT_TIMEOUT_S)
    h.wait_until(lambda: h.topic_partitions(a, gone) is None, message=f"{gone} deleted")

    if how == "sigterm":
        broker.stop()
    else:
        broker.kill()
    broker.start()

    md = a.list_topics(timeout=h.CLIENT_TIMEOUT_S)
    assert keep in md.topics and len(md.topics[keep].partitions) == 2
    assert gone not in md.topics, "a deleted topic came back after restart"
    assert h.watermarks(broker.bootstrap, keep, 1) == (0, 1)

    # Re-creating the deleted name gives a fresh, empty topic: no old data resurfaces.
    h.create_topic(a, gone, partitions=1)
    assert h.watermarks(broker.bootstrap, gone, 0) == (0, 0)
    assert h.consume_partitions(broker.bootstrap, gone, [0])[0] == []
