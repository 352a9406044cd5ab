"""Time and size retention: old segments are deleted, the log start offset
moves, and a lagging consumer is reset per auto.offset.reset."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, TopicPartition

import helpers as h

SEGMENT = 1024 * 1024  # the smallest segment.bytes Kafka allows
VALUE = b"r" * 1000


def fill(bootstrap, topic, n, timestamp=None):
    p = h.producer(bootstrap, linger_ms=20, batch_size=64 * 1024)
    items = [{"value": VALUE, **({"timestamp": timestamp} if timestamp else {})} for _ in range(n)]
    log = h.produce_and_flush(p, items, topic)
    assert not log.errors, log.errors[:3]


def test_size_retention_deletes_old_segments_and_resets_lagging_consumers(broker_factory):
    b = broker_factory("log.retention.check.interval.ms=200")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("ret-size")
    h.create_topic(a, t, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(SEGMENT)})
    fill(b.bootstrap, t, 4000)  # ~4 MB: four segments or more
    # Kafka's rule: segments go while the rest still holds retention.bytes, so
    # between one and two segments' worth of records remain. A retention pass may
    # run while the fill is still going, so wait for the passes that follow it.
    low, high = h.wait_until(lambda: (lambda w: w if w[1] - w[0] <= 2200 else None)(h.watermarks(b.bootstrap, t)),
                             message="retention to trim the log to retention.bytes")
    assert high == 4000
    time.sleep(1.0)  # five more passes: the log must not shrink below retention.bytes
    assert h.watermarks(b.bootstrap, t) == (low, high)
    assert 1000 <= high - low, (low, high)

    # A consumer still at offset 0 is below the log start: auto.offset.reset=earliest
    # moves it to the new start, and the first record it sees is at `low`.
    c = h.consumer(b.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(t, 0, 0)])
        m = h.poll_one(c)
        while m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            m = h.poll_one(c)
        assert m.error() is None, m.error()
        assert m.offset() == low
    finally:
        c.close()
    # With auto.offset.reset=error the client is told OFFSET_OUT_OF_RANGE.
    c = h.consumer(b.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(t, 0, 0)])
        m = h.poll_one(c)
        assert m.error() is not None and m.error().code() == KafkaError._AUTO_OFFSET_RESET, m.error()
    finally:
        c.close()


def test_time_retention_deletes_expired_segments(broker_factory):
    b = broker_factory("log.retention.check.interval.ms=200")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("ret-time")
    h.create_topic(a, t, config={"segment.bytes": str(SEGMENT), "retention.ms": "3600000"})
    two_days_ago = int(time.time() * 1000) - 2 * 86_400_000
    fill(b.bootstrap, t, 2500, timestamp=two_days_ago)  # old records: expired
    fill(b.bootstrap, t, 500)  # fresh records: kept
    low, high = h.wait_until(lambda: (lambda w: w if w[0] >= 2000 else None)(h.watermarks(b.bootstrap, t)),
                             message="expired segments to be deleted")
    assert high == 3000
    got = h.consume_partitions(b.bootstrap, t, [0])[0]
    assert got[0].offset == low and got[-1].offset == 2999
    assert all(r.timestamp > two_days_ago for r in got if r.offset >= 2500)


def test_compacted_only_topic_is_not_trimmed_by_retention(broker_factory):
    b = broker_factory("log.retention.check.interval.ms=200")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("ret-compact")
    h.create_topic(a, t, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(SEGMENT),
                                 "cleanup.policy": "compact"})
    p = h.producer(b.bootstrap, linger_ms=20)
    log = h.produce_and_flush(p, [{"key": str(i % 50).encode(), "value": VALUE} for i in range(3000)], t)
    assert not log.errors
    # Let several retention checks pass; nothing may be deleted by retention.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert h.watermarks(b.bootstrap, t)[0] == 0
        time.sleep(0.2)
