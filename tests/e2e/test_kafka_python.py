"""samsa driven by kafka-python (a pure-Python client with its own protocol code)."""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

import helpers as h

TIMEOUT_MS = 20_000


@pytest.fixture
def kp_admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_MS)
    yield a
    a.close()


def test_admin_create_list_delete(broker, kp_admin):
    t = h.unique_topic("kp-admin")
    kp_admin.create_topics({t: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
    assert t in kp_admin.list_topics()
    desc = {d["name"]: d for d in kp_admin.describe_topics([t])}
    parts = desc[t]["partitions"]
    assert sorted(p["partition_index"] for p in parts) == [0, 1]
    assert all(p["leader_id"] == 1 for p in parts)

    with pytest.raises(TopicAlreadyExistsError):
        kp_admin.create_topics({t: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)

    kp_admin.delete_topics([t], timeout_ms=TIMEOUT_MS)
    h.wait_until(lambda: t not in kp_admin.list_topics(), message=f"{t} deleted")
    with pytest.raises(UnknownTopicOrPartitionError):
        kp_admin.delete_topics([t], timeout_ms=TIMEOUT_MS)


def test_produce_keyed_json_and_consume_without_group(broker, kp_admin):
    t = h.unique_topic("kp-rt")
    kp_admin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap,
                             key_serializer=str.encode,
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    futures = [producer.send(t, key=f"k{i % 3}", value={"n": i, "text": "x" * i}) for i in range(40)]
    producer.flush(timeout=20)
    metas = [f.get(timeout=20) for f in futures]
    producer.close(timeout=10)
    assert [(m.topic, m.partition, m.offset) for m in metas] == [(t, 0, i) for i in range(40)]

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             key_deserializer=bytes.decode,
                             value_deserializer=lambda b: json.loads(b.decode("utf-8")))
    try:
        tp = TopicPartition(t, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 40 and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                records.extend(recs)
    finally:
        consumer.close()
    assert [(r.offset, r.key, r.value) for r in records] == \
        [(i, f"k{i % 3}", {"n": i, "text": "x" * i}) for i in range(40)]


def test_offset_lookups(broker, kp_admin):
    t = h.unique_topic("kp-offsets")
    kp_admin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
    t0 = int(time.time() * 1000) - 600_000
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        producer.send(t, value=f"v{i}".encode(), timestamp_ms=t0 + 100 * i)
    producer.flush(timeout=20)
    producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, request_timeout_ms=TIMEOUT_MS)
    try:
        tp = TopicPartition(t, 0)
        assert consumer.beginning_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 0}
        assert consumer.end_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 10}
        hit = consumer.offsets_for_times({tp: t0 + 250}, timeout_ms=TIMEOUT_MS)[tp]
        assert (hit.offset, hit.timestamp) == (3, t0 + 300)
        hit = consumer.offsets_for_times({tp: t0}, timeout_ms=TIMEOUT_MS)[tp]
        assert (hit.offset, hit.timestamp) == (0, t0)
        assert consumer.offsets_for_times({tp: t0 + 10_000}, timeout_ms=TIMEOUT_MS)[tp] is None
    finally:
        consumer.close()


def test_admin_describe_log_dirs(broker, kp_admin):
    """DescribeLogDirs (kafka-log-dirs.sh --describe): the data directory, each
    partition's bytes as stored on disk, and the filesystem's size and free space."""
    import os
    import shutil

    t = h.unique_topic("kp-logdirs")
    kp_admin.create_topics({t: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(200):
        p.send(t, value=b"x" * 500, partition=0)
    p.flush()
    p.close()

    def on_disk(partition):
        d = broker.data_dir / f"{t}-{partition}"
        return sum(os.path.getsize(d / f) for f in os.listdir(d) if f.endswith(".log"))

    [answer] = kp_admin.describe_log_dirs()
    [log_dir] = answer["log_dirs"]
    assert log_dir["error_code"] == 0
    assert os.path.samefile(log_dir["log_dir"], broker.data_dir)
    sizes = {(tp["name"], q["partition_index"]): q["partition_size"]
             for tp in log_dir["topics"] for q in tp["partitions"]}
    assert sizes[(t, 0)] == on_disk(0) > 200 * 500
    assert sizes[(t, 1)] == 0
    usage = shutil.disk_usage(broker.data_dir)
    assert log_dir["total_bytes"] == usage.total
    assert abs(log_dir["usable_bytes"] - usage.free) < 256 << 20

    # Asking for one partition describes only that one; unknown ones are left out.
    [answer] = kp_admin.describe_log_dirs({t: [1], "no-such-topic": [0]})
    [log_dir] = answer["log_dirs"]
    assert [(tp["name"], [q["partition_index"] for q in tp["partitions"]]) for tp in log_dir["topics"]] == [(t, [1])]


def test_kafka_python_infers_kafka_4_1_and_uses_its_newest_versions(broker, kp_admin):
    """kafka-python infers the broker's release from its ApiVersions ranges
    (Produce v13 means 4.1) and switches on its 4.x code paths; a produce and
    consume round trip then runs over Produce v13 (topics by id), Fetch v18,
    ListOffsets v10 and Metadata v13."""
    from kafka.protocol.consumer.fetch import FetchRequest
    from kafka.protocol.consumer.offsets import ListOffsetsRequest
    from kafka.protocol.metadata import MetadataRequest
    from kafka.protocol.producer.produce import ProduceRequest

    assert kp_admin._client.check_version() >= (4, 1)
    used = {r.__name__: kp_admin._client.api_version(r, max_version=100) for r in
            (ProduceRequest, FetchRequest, ListOffsetsRequest, MetadataRequest)}
    assert used == {"ProduceRequest": 13, "FetchRequest": 18, "ListOffsetsRequest": 10,
                    "MetadataRequest": 13}, used

    t = h.unique_topic("kp-v4")
    kp_admin.create_topics({t: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    metas = [producer.send(t, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2) for i in range(20)]
    producer.flush(timeout=20)
    assert sorted((m.get(timeout=20).partition, m.get(timeout=20).offset) for m in metas) == \
        sorted((p, o) for p in (0, 1) for o in range(10))
    producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, 0), TopicPartition(t, 1)]
        consumer.assign(tps)
        assert consumer.end_offsets(tps) == {tps[0]: 10, tps[1]: 10}
        got = []
        deadline = time.time() + 20
        while len(got) < 20 and time.time() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.partition, r.offset, r.value) for r in records)
        assert sorted(got) == sorted((i % 2, i // 2, b"v%d" % i) for i in range(20))
    finally:
        consumer.close()
