"""The partition side of transactions, before a transaction coordinator
exists: transactional batches sent as raw Produce requests, their markers
written with raw WriteTxnMarkers (v1) requests as a coordinator would, and
real consumers reading. A read_committed consumer (confluent-kafka,
kafka-python) never
sees an aborted transaction's records nor an open transaction's, while a
read_uncommitted one sees everything as stored; markers themselves are never
delivered as records.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

import helpers as h
import kafka_wire as kw
from cluster import cluster_fixture, log

WRITE_TXN_MARKERS = 27


def write_txn_markers_v1(correlation_id: int, producer_id: int, epoch: int, commit: bool,
                         topic: str, partition: int, coordinator_epoch: int = 0) -> bytes:
    """WriteTxnMarkers v1 (flexible: request header v2, compact arrays)."""
    header = kw.request_header_v1(WRITE_TXN_MARKERS, 1, correlation_id) + kw.uvarint(0)
    topic_entry = (kw.compact_string(topic)
                   + kw.uvarint(2) + kw.i32(partition)   # compact array of one partition
                   + kw.uvarint(0))                       # tagged fields
    marker = (kw.i64(producer_id) + kw.i16(epoch) + kw.i8(1 if commit else 0)
              + kw.uvarint(2) + topic_entry               # compact array of one topic
              + kw.i32(coordinator_epoch) + kw.uvarint(0))
    body = kw.uvarint(2) + marker + kw.uvarint(0)
    return kw.frame(header + body)


class Compact(kw.Reader):
    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def compact_string(self) -> str:
        return self.take(self.uvarint() - 1).decode()


def marker_errors(resp: bytes) -> list[int]:
    """The partition error codes of a WriteTxnMarkers v1 response."""
    r = Compact(resp)
    r.i32()          # correlation id
    r.skip_tags()    # response header v1
    errors = []
    for _ in range(r.uvarint() - 1):
        r.i64()
        for _ in range(r.uvarint() - 1):
            r.compact_string()
            for _ in range(r.uvarint() - 1):
                r.i32()
                errors.append(r.i16())
                r.skip_tags()
            r.skip_tags()
        r.skip_tags()
    return errors


def produce(bootstrap: str, topic: str, batch: bytes) -> int:
    s = kw.connect(bootstrap)
    try:
        frame = kw.roundtrip(s, kw.produce_v3_request(1, topic, 0, batch))
        assert frame is not None, "no answer to Produce"
        res = kw.parse_produce_v3(frame)[1][(topic, 0)]
        assert res.error_code == 0, f"produce refused with {res.error_code}"
        return res.base_offset
    finally:
        s.close()


def end_txn(bootstrap: str, topic: str, producer_id: int, commit: bool) -> None:
    s = kw.connect(bootstrap)
    try:
        frame = kw.roundtrip(s, write_txn_markers_v1(7, producer_id, 0, commit, topic, 0))
        assert frame is not None, "no answer to WriteTxnMarkers"
        assert marker_errors(frame) == [0]
    finally:
        s.close()


def txn(values: list[bytes], producer_id: int) -> bytes:
    return kw.simple_batch(values, producer=(producer_id, 0, 0), transactional=True)


def values(bootstrap: str, topic: str, isolation: str) -> list[bytes]:
    got = h.consume_partitions(bootstrap, topic, [0], isolation_level=isolation)[0]
    return [m.value for m in got]


def kafka_python_values(bootstrap: str, topic: str, isolation: str, until: int) -> list[bytes]:
    """kafka-python's consumer from offset 0 until its position reaches ``until``."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      isolation_level=isolation, request_timeout_ms=30000)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while c.position(tp) < until:
            assert time.monotonic() < deadline, f"kafka-python stuck at {c.position(tp)}; got {out}"
            for records in c.poll(timeout_ms=200).values():
                out.extend(r.value for r in records)
        return out
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_read_committed_skips_aborted_and_open_transactions(broker):
    topic = h.unique_topic("txn-part")
    h.create_topic(h.admin(broker.bootstrap), topic, partitions=1)
    assert produce(broker.bootstrap, topic, txn([b"a1", b"a2"], 5000)) == 0
    assert produce(broker.bootstrap, topic, kw.simple_batch([b"p1"])) == 2
    # Transaction 5000 is open: read_committed stops before it.
    assert values(broker.bootstrap, topic, "read_committed") == []
    assert values(broker.bootstrap, topic, "read_uncommitted") == [b"a1", b"a2", b"p1"]

    end_txn(broker.bootstrap, topic, 5000, commit=False)          # ABORT at offset 3
    assert produce(broker.bootstrap, topic, txn([b"b1"], 5001)) == 4
    end_txn(broker.bootstrap, topic, 5001, commit=True)           # COMMIT at offset 5
    assert produce(broker.bootstrap, topic, txn([b"c1"], 5002)) == 6   # stays open
    assert produce(broker.bootstrap, topic, kw.simple_batch([b"p2"])) == 7

    assert values(broker.bootstrap, topic, "read_committed") == [b"p1", b"b1"]
    assert values(broker.bootstrap, topic, "read_uncommitted") == [b"a1", b"a2", b"p1", b"b1", b"c1", b"p2"]
    # kafka-python agrees: read_committed ends at the LSO (6), before c1.
    assert kafka_python_values(broker.bootstrap, topic, "read_committed", 6) == [b"p1", b"b1"]
    assert kafka_python_values(broker.bootstrap, topic, "read_uncommitted", 8) == [
        b"a1", b"a2", b"p1", b"b1", b"c1", b"p2"]

    # After a restart the aborted index and the open transaction are rebuilt.
    broker.kill()
    broker.start()
    assert values(broker.bootstrap, topic, "read_committed") == [b"p1", b"b1"]
    end_txn(broker.bootstrap, topic, 5002, commit=False)
    assert values(broker.bootstrap, topic, "read_committed") == [b"p1", b"b1", b"p2"]


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


@pytest.mark.timeout(300)
def test_markers_replicate_across_leader_kills_and_segment_rolls(cluster_factory):
    """3 nodes, rf=3, 2 KiB segments: transactions committed and aborted
    through the leader, one left open; after kill -9 of the leader, and
    again after the next leader is killed with the first back, read_committed
    on each new leader (whose producer state and .txnindex came from
    replication) returns exactly the committed and non-transactional records."""
    c = cluster_factory(3, overrides={"log.segment.bytes": "2048"})
    topic = h.unique_topic("txn-repl")
    c.create_topic(topic, 1)
    leader = c.leader_of(topic, 0)
    lb = c.nodes[leader].bootstrap
    expected: list[bytes] = []
    pad = b"." * 60
    for i in range(12):
        values_i = [f"t{i}-{j}".encode() + pad for j in range(4)]
        produce(lb, topic, txn(values_i, 6000 + i))
        produce(lb, topic, kw.simple_batch([f"p{i}".encode()]))
        commit = i % 2 == 1
        end_txn(lb, topic, 6000 + i, commit=commit)
        expected += (values_i if commit else []) + [f"p{i}".encode()]
    produce(lb, topic, txn([b"open"], 7000))
    produce(lb, topic, kw.simple_batch([b"after-open"]))
    assert len(list((c.nodes[leader].data_dir / f"{topic}-0").glob("*.log"))) >= 3, "segments rolled"
    c.wait_isr_full(topic, [0])
    assert values(c.bootstrap, topic, "read_committed") == expected

    c.kill9(leader)
    second = c.wait_new_leader(topic, 0, leader)
    log(f"leader {leader} killed; {second} leads")
    assert values(c.bootstrap, topic, "read_committed") == expected
    c.restart(leader)
    c.wait_isr_full(topic, [0])
    c.kill9(second)
    third = c.wait_new_leader(topic, 0, second)
    log(f"leader {second} killed; {third} leads")
    assert values(c.bootstrap, topic, "read_committed") == expected
    # The open transaction ends on the new leader; read_committed moves past it.
    end_txn(c.nodes[third].bootstrap, topic, 7000, commit=True)
    assert values(c.bootstrap, topic, "read_committed") == expected + [b"open", b"after-open"]
    c.restart(second)
