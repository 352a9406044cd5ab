"""samsa driven by confluent-kafka (librdkafka): admin, produce, consume, offsets."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException,
                             TIMESTAMP_CREATE_TIME, TopicPartition)
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic

import helpers as h


def test_create_list_delete_topic(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("admin")
    h.create_topic(a, t, partitions=3)

    md = a.list_topics(timeout=10)
    assert set(md.brokers) == {1}, md.brokers
    b1 = md.brokers[1]
    assert (b1.host, b1.port) == ("127.0.0.1", broker.port)
    topic = md.topics[t]
    assert sorted(topic.partitions) == [0, 1, 2]
    for p in topic.partitions.values():
        assert p.error is None
        assert p.leader == 1
        assert p.replicas == [1]
        assert p.isrs == [1]

    again = a.create_topics([NewTopic(t, num_partitions=3, replication_factor=1)])[t]
    with pytest.raises(KafkaException) as ei:
        again.result(timeout=h.CLIENT_TIMEOUT_S)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    a.delete_topics([t], operation_timeout=10)[t].result(timeout=h.CLIENT_TIMEOUT_S)
    h.wait_until(lambda: h.topic_partitions(a, t) is None, message=f"{t} to disappear")

    missing = a.delete_topics([t])[t]
    with pytest.raises(KafkaException) as ei:
        missing.result(timeout=h.CLIENT_TIMEOUT_S)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_keyed_roundtrip_acks_all(broker, codec):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic(f"roundtrip-{codec}")
    h.create_topic(a, t, partitions=3)

    items = []
    for i in range(300):
        key = f"user-{i % 17}".encode()
        # Repetitive values so that compression actually shrinks the batches.
        value = (f"event {i} for {key.decode()} " * (1 + i % 5)).encode()
        items.append(dict(key=key, value=value, headers=[("seq", str(i).encode()), ("codec", codec.encode())]))
    p = h.producer(broker.bootstrap, acks="all", compression_type=codec)
    log = h.produce_and_flush(p, items, t)
    assert not log.errors, log.errors[:3]

    got = h.consume_partitions(broker.bootstrap, t, [0, 1, 2])
    total = sum(len(v) for v in got.values())
    assert total == len(items)

    # Offsets are dense from 0 in every partition.
    for part, recs in got.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {part}"
    # Keys, values and headers come back unchanged, in produce order per partition.
    by_partition_sent = {p_: [] for p_ in got}
    for d in log.ok:
        by_partition_sent[d.partition].append(d)
    for part, recs in got.items():
        sent = sorted(by_partition_sent[part], key=lambda d: d.offset)
        assert [(d.offset, d.key, d.value) for d in sent] == [(r.offset, r.key, r.value) for r in recs]
        # Delivery reports carry no headers, so match headers via the "seq" header.
        for r in recs:
            seq = int(dict(r.headers)["seq"])
            assert r.headers == items[seq]["headers"], (part, r.offset)
            assert (r.key, r.value) == (items[seq]["key"], items[seq]["value"])
        seqs = [int(dict(r.headers)["seq"]) for r in recs]
        assert seqs == sorted(seqs), "records of one partition came back out of produce order"
    # Same key -> same partition, and the keys actually spread over partitions.
    partitions_of_key = {}
    for part, recs in got.items():
        for r in recs:
            partitions_of_key.setdefault(r.key, set()).add(part)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), partitions_of_key
    assert sum(1 for recs in got.values() if recs) >= 2


def test_acks_0_and_1(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("acks")
    h.create_topic(a, t, partitions=1)

    log0 = h.produce_and_flush(h.producer(broker.bootstrap, acks=0),
                               [dict(value=f"a0-{i}".encode()) for i in range(50)], t)
    assert not log0.errors
    # acks=0: the broker sends no response, so the offset is unknown to the client.
    # The records must still be appended; poll the high watermark.
    h.wait_until(lambda: h.watermarks(broker.bootstrap, t)[1] == 50, message="acks=0 records to land")

    log1 = h.produce_and_flush(h.producer(broker.bootstrap, acks=1),
                               [dict(value=f"a1-{i}".encode()) for i in range(50)], t)
    assert not log1.errors
    assert [d.offset for d in log1.ok] == list(range(50, 100))

    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [r.value for r in got] == [f"a0-{i}".encode() for i in range(50)] + [f"a1-{i}".encode() for i in range(50)]


def test_consume_from_end_sees_only_new_records(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("from-end")
    h.create_topic(a, t, partitions=1)
    p = h.producer(broker.bootstrap, acks="all")
    h.produce_and_flush(p, [dict(value=f"old-{i}".encode()) for i in range(10)], t)

    c = h.consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(t, 0, OFFSET_END)])
        # Wait until the consumer has resolved "end" (it reports EOF at offset 10)
        # before producing, so the new records are unambiguously after it.
        def eof():
            m = c.poll(0.2)
            if m is None:
                return None
            assert m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF, \
                f"consumer positioned at end returned an old record: {m.value()!r}"
            return m.offset()
        assert h.wait_until(eof, message="end-of-partition at the log end") == 10

        h.produce_and_flush(p, [dict(value=f"new-{i}".encode()) for i in range(5)], t)
        got = h.drain(c, [0])[0]
    finally:
        c.close()
    assert [(r.offset, r.value) for r in got] == [(10 + i, f"new-{i}".encode()) for i in range(5)]


def test_offsets_for_times_and_explicit_timestamps(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("times")
    h.create_topic(a, t, partitions=1)
    t0 = int(time.time() * 1000) - 3_600_000
    stamps = [t0 + i * 1000 for i in range(10)]
    p = h.producer(broker.bootstrap, acks="all")
    # Several small batches so the lookup has to look inside batches, not only at their first record.
    for chunk in (stamps[:3], stamps[3:7], stamps[7:]):
        h.produce_and_flush(p, [dict(value=str(ts).encode(), timestamp=ts) for ts in chunk], t)

    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [(r.timestamp_type, r.timestamp) for r in got] == [(TIMESTAMP_CREATE_TIME, ts) for ts in stamps]

    c = h.consumer(broker.bootstrap)
    try:
        def lookup(ts):
            res = c.offsets_for_times([TopicPartition(t, 0, ts)], timeout=h.CLIENT_TIMEOUT_S)
            assert res[0].error is None, res[0].error
            return res[0].offset
        assert lookup(t0 - 5000) == 0            # before everything: first record
        assert lookup(t0) == 0                   # exact match
        assert lookup(t0 + 3500) == 4            # between records: first at/after
        assert lookup(t0 + 4000) == 4
        assert lookup(t0 + 7000) == 7            # first record of the last batch
        assert lookup(t0 + 9000) == 9
        assert lookup(t0 + 9001) == -1          # after everything: no such offset
    finally:
        c.close()


def test_watermarks_and_delete_records(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("wm")
    h.create_topic(a, t, partitions=2)
    assert h.watermarks(broker.bootstrap, t, 0) == (0, 0)

    p = h.producer(broker.bootstrap, acks="all")
    log = h.produce_and_flush(p, [dict(value=f"v{i}".encode(), partition=0) for i in range(7)], t)
    assert not log.errors
    assert h.watermarks(broker.bootstrap, t, 0) == (0, 7)
    assert h.watermarks(broker.bootstrap, t, 1) == (0, 0)

    fut = a.delete_records([TopicPartition(t, 0, 3)], operation_timeout=10)
    res = list(fut.values())[0].result(timeout=h.CLIENT_TIMEOUT_S)
    assert res.low_watermark == 3
    assert h.watermarks(broker.bootstrap, t, 0) == (3, 7)

    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(3, 7)]

    # Deleting beyond the high watermark is refused.
    fut = a.delete_records([TopicPartition(t, 0, 100)], operation_timeout=10)
    with pytest.raises(KafkaException) as ei:
        list(fut.values())[0].result(timeout=h.CLIENT_TIMEOUT_S)
    assert ei.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert h.watermarks(broker.bootstrap, t, 0) == (3, 7)


def test_auto_create_on_produce_default_partitions(broker):
    t = h.unique_topic("auto")
    log = h.produce_and_flush(h.producer(broker.bootstrap, acks="all"), [dict(value=b"hello")], t)
    assert not log.errors, log.errors
    assert (log.ok[0].partition, log.ok[0].offset) == (0, 0)
    assert h.topic_partitions(h.admin(broker.bootstrap), t) == 1


def test_auto_create_uses_num_partitions_setting(broker_factory):
    b = broker_factory("num.partitions=3")
    t = h.unique_topic("auto3")
    log = h.produce_and_flush(h.producer(b.bootstrap, acks="all"), [dict(value=b"hello")], t)
    assert not log.errors, log.errors
    assert h.topic_partitions(h.admin(b.bootstrap), t) == 3


def test_auto_create_disabled(broker_factory):
    b = broker_factory("auto.create.topics.enable=false")
    t = h.unique_topic("noauto")
    p = h.producer(b.bootstrap, acks="all", message_timeout_ms=10000,
                   topic_metadata_propagation_max_ms=2000)
    log = h.produce_and_flush(p, [dict(value=b"nobody home")], t, timeout=20)
    assert not log.ok
    assert len(log.errors) == 1
    assert log.errors[0][0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), log.errors
    assert h.topic_partitions(h.admin(b.bootstrap), t) is None

    # Producing to a topic that does exist still works on this broker.
    a = h.admin(b.bootstrap)
    t2 = h.unique_topic("exists")
    h.create_topic(a, t2)
    assert not h.produce_and_flush(p, [dict(value=b"ok")], t2).errors


def test_create_partitions(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("grow")
    h.create_topic(a, t, partitions=1)
    p = h.producer(broker.bootstrap, acks="all")
    h.produce_and_flush(p, [dict(value=f"p0-{i}".encode(), partition=0) for i in range(3)], t)

    a.create_partitions([NewPartitions(t, 4)], operation_timeout=10)[t].result(timeout=h.CLIENT_TIMEOUT_S)
    h.wait_until(lambda: h.topic_partitions(a, t) == 4, message="4 partitions")
    md = a.list_topics(t, timeout=10).topics[t]
    assert all(pm.leader == 1 for pm in md.partitions.values())

    # A fresh producer: the first one's cached metadata still says 1 partition.
    p = h.producer(broker.bootstrap, acks="all")
    log = h.produce_and_flush(p, [dict(value=b"in-new-partition", partition=3)], t)
    assert not log.errors, log.errors
    assert (log.ok[0].partition, log.ok[0].offset) == (3, 0)
    got = h.consume_partitions(broker.bootstrap, t, [0, 3])
    assert [r.value for r in got[0]] == [f"p0-{i}".encode() for i in range(3)]
    assert [r.value for r in got[3]] == [b"in-new-partition"]

    # Shrinking is refused and changes nothing.
    with pytest.raises(KafkaException) as ei:
        a.create_partitions([NewPartitions(t, 2)])[t].result(timeout=h.CLIENT_TIMEOUT_S)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert h.topic_partitions(a, t) == 4


def test_describe_configs(broker):
    a = h.admin(broker.bootstrap)
    t_default = h.unique_topic("cfg-default")
    t_custom = h.unique_topic("cfg-custom")
    h.create_topic(a, t_default)
    h.create_topic(a, t_custom, config={"retention.ms": "3600000", "cleanup.policy": "delete"})

    def describe(res):
        return list(a.describe_configs([res]).values())[0].result(timeout=h.CLIENT_TIMEOUT_S)

    cfg = describe(ConfigResource("topic", t_default))
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["retention.ms"].is_default

    cfg = describe(ConfigResource("topic", t_custom))
    assert cfg["retention.ms"].value == "3600000"
    assert not cfg["retention.ms"].is_default

    bcfg = describe(ConfigResource("broker", "1"))
    assert bcfg["message.max.bytes"].value == "1048588"
    assert bcfg["num.partitions"].value == "1"
    assert bcfg["auto.create.topics.enable"].value == "true"

    with pytest.raises(KafkaException) as ei:
        describe(ConfigResource("topic", h.unique_topic("cfg-missing")))
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_message_larger_than_message_max_bytes_is_rejected(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("big")
    h.create_topic(a, t)
    # Raise the client-side limit so the producer really sends the oversized
    # record and the broker (message.max.bytes=1048588 by default) has to refuse it.
    p = h.producer(broker.bootstrap, acks="all", message_max_bytes=10_000_000,
                   compression_type="none", retries=0)
    big = os.urandom(2_000_000)
    log = h.produce_and_flush(p, [dict(value=big)], t)
    assert not log.ok
    assert [e.code() for e, _ in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]

    # The same producer and the broker keep working.
    log = h.produce_and_flush(p, [dict(value=b"small")], t)
    assert not log.errors, log.errors
    assert log.ok[0].offset == 0
    assert h.watermarks(broker.bootstrap, t) == (0, 1)
    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [r.value for r in got] == [b"small"]


def test_fetch_long_poll_delivers_promptly(broker):
    """A consumer waiting at the log end gets a new record without waiting for
    its full fetch.wait.max.ms: the broker answers the long poll as soon as
    data arrives."""
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("longpoll")
    h.create_topic(a, t)
    c = h.consumer(broker.bootstrap, fetch_wait_max_ms=5000)
    p = h.producer(broker.bootstrap, acks=1, linger_ms=0)
    try:
        c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
        # The first fetch on the empty partition parks for up to 5 s and then
        # reports end-of-partition; the consumer immediately sends the next fetch.
        m = h.poll_one(c, timeout=20)
        assert m.error() and m.error().code() == KafkaError._PARTITION_EOF, m.error()
        # There is no client-side signal for "the next fetch is parked at the
        # broker", so give it a moment to get there. (If it is not parked yet the
        # record is simply returned by that fetch: the test cannot fail spuriously.)
        time.sleep(0.5)
        sent = time.monotonic()
        h.produce_and_flush(p, [dict(value=b"wake up")], t)
        m = h.poll_one(c, timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        c.close()
    assert m.error() is None and m.value() == b"wake up"
    assert elapsed < 3.0, f"record took {elapsed:.2f}s to reach a waiting consumer (fetch.wait.max.ms=5000)"
