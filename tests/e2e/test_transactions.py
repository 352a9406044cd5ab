"""Transactions with real clients (KIP-98, KIP-890 transaction version 2):
confluent-kafka's and kafka-python's transactional producers against one
samsa broker, read back by read_committed and read_uncommitted consumers.

What a user relies on: a transaction's records are visible to read_committed
consumers only once it commits, never when it aborts (read_uncommitted
consumers see everything, as with Kafka); a second producer with the same
transactional.id fences the first; a producer that stops mid-transaction is
aborted by the broker after transaction.timeout.ms, so read_committed
consumers move on; the transaction coordinator's state survives a restart.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

import helpers as h
from cluster import cluster_fixture

TXN_TIMEOUT_S = 30.0


def txn_producer(bootstrap: str, txn_id: str, **conf):
    return h.producer(bootstrap, **{"transactional.id": txn_id, "enable.idempotence": True,
                                    "transaction.timeout.ms": 60000, **conf})


def produce_txn(p, topic: str, values, partitions: int = 1) -> None:
    for i, v in enumerate(values):
        p.produce(topic, value=v, key=str(i).encode(), partition=i % partitions)
    assert p.flush(TXN_TIMEOUT_S) == 0, "transactional records undelivered"


def values_read(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    got = h.consume_partitions(bootstrap, topic, range(partitions), **{"isolation.level": isolation})
    return [r.value for p in range(partitions) for r in got[p]]


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def test_commit_and_abort_on_a_three_node_cluster(cluster_factory):
    """The coordinator writes markers to partition leaders on other brokers
    (WriteTxnMarkers over the inter-broker listener), with
    __transaction_state replicated 3 ways and min.insync.replicas 2."""
    c = cluster_factory(3)
    topic = h.unique_topic("txn-cluster")
    c.create_topic(topic, 3, rf=3)
    leaders = {c.leader_of(topic, p) for p in range(3)}
    p = txn_producer(c.bootstrap, h.unique_topic("tid"))
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    produce_txn(p, topic, [f"a{i}".encode() for i in range(9)], partitions=3)
    p.abort_transaction(TXN_TIMEOUT_S)
    committed = [f"k{i}".encode() for i in range(9)]
    p.begin_transaction()
    produce_txn(p, topic, committed, partitions=3)
    p.commit_transaction(TXN_TIMEOUT_S)
    assert sorted(values_read(c.bootstrap, topic, 3, "read_committed")) == sorted(committed)
    assert len(values_read(c.bootstrap, topic, 3, "read_uncommitted")) == 18
    assert len(leaders) > 1, f"all partitions led by one broker: {leaders}"


def test_commit_is_visible_to_read_committed_only_after_commit(broker):
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-commit")
    h.create_topic(a, topic, 2)
    p = txn_producer(broker.bootstrap, h.unique_topic("tid"))
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    values = [f"c{i}".encode() for i in range(20)]
    produce_txn(p, topic, values, partitions=2)
    # Open transaction: read_committed stops at the last stable offset.
    assert values_read(broker.bootstrap, topic, 2, "read_committed") == []
    assert sorted(values_read(broker.bootstrap, topic, 2, "read_uncommitted")) == sorted(values)
    p.commit_transaction(TXN_TIMEOUT_S)
    assert sorted(values_read(broker.bootstrap, topic, 2, "read_committed")) == sorted(values)


def test_abort_is_never_visible_to_read_committed(broker):
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-abort")
    h.create_topic(a, topic, 2)
    p = txn_producer(broker.bootstrap, h.unique_topic("tid"))
    p.init_transactions(TXN_TIMEOUT_S)
    aborted = [f"a{i}".encode() for i in range(10)]
    committed = [f"k{i}".encode() for i in range(10)]
    p.begin_transaction()
    produce_txn(p, topic, aborted, partitions=2)
    p.abort_transaction(TXN_TIMEOUT_S)
    p.begin_transaction()
    produce_txn(p, topic, committed, partitions=2)
    p.commit_transaction(TXN_TIMEOUT_S)
    assert sorted(values_read(broker.bootstrap, topic, 2, "read_committed")) == sorted(committed)
    assert sorted(values_read(broker.bootstrap, topic, 2, "read_uncommitted")) == sorted(aborted + committed)


def test_second_producer_with_same_transactional_id_fences_the_first(broker):
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-fence")
    h.create_topic(a, topic, 1)
    tid = h.unique_topic("tid")
    zombie = txn_producer(broker.bootstrap, tid)
    zombie.init_transactions(TXN_TIMEOUT_S)
    zombie.begin_transaction()
    produce_txn(zombie, topic, [b"zombie"])
    fresh = txn_producer(broker.bootstrap, tid)
    # Aborts the zombie's open transaction and bumps the epoch.
    fresh.init_transactions(TXN_TIMEOUT_S)
    fresh.begin_transaction()
    produce_txn(fresh, topic, [b"fresh"])
    fresh.commit_transaction(TXN_TIMEOUT_S)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(TXN_TIMEOUT_S)
    err = e.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    assert values_read(broker.bootstrap, topic, 1, "read_committed") == [b"fresh"]


def test_stuck_transaction_is_aborted_after_its_timeout(broker_factory):
    broker = broker_factory("transaction.abort.timed.out.transaction.cleanup.interval.ms=500")
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-timeout")
    h.create_topic(a, topic, 1)
    # (librdkafka wants socket.timeout.ms and message.timeout.ms within
    # transaction.timeout.ms.)
    stuck = txn_producer(broker.bootstrap, h.unique_topic("tid"),
                         **{"transaction.timeout.ms": 4000, "socket.timeout.ms": 4000,
                            "message.timeout.ms": 4000})
    stuck.init_transactions(TXN_TIMEOUT_S)
    stuck.begin_transaction()
    produce_txn(stuck, topic, [b"stuck"])
    # The producer never ends it. Records produced after it (another producer)
    # become readable once the broker aborted the stuck transaction.
    other = txn_producer(broker.bootstrap, h.unique_topic("tid"))
    other.init_transactions(TXN_TIMEOUT_S)
    other.begin_transaction()
    produce_txn(other, topic, [b"after"])
    other.commit_transaction(TXN_TIMEOUT_S)
    got = h.wait_until(lambda: values_read(broker.bootstrap, topic, 1, "read_committed"), timeout=30,
                       message="read_committed consumer past the timed-out transaction")
    assert got == [b"after"]
    assert sorted(values_read(broker.bootstrap, topic, 1, "read_uncommitted")) == [b"after", b"stuck"]


def test_transactions_keep_working_across_a_broker_restart(broker):
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-restart")
    h.create_topic(a, topic, 1)
    tid = h.unique_topic("tid")
    p = txn_producer(broker.bootstrap, tid)
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    produce_txn(p, topic, [b"before"])
    p.commit_transaction(TXN_TIMEOUT_S)
    del p
    broker.restart()
    # The coordinator reloads __transaction_state: the same transactional id
    # gets its producer id back with a higher epoch, and works.
    p = txn_producer(broker.bootstrap, tid)
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    produce_txn(p, topic, [b"aborted"])
    p.abort_transaction(TXN_TIMEOUT_S)
    p.begin_transaction()
    produce_txn(p, topic, [b"after"])
    p.commit_transaction(TXN_TIMEOUT_S)
    assert values_read(broker.bootstrap, topic, 1, "read_committed") == [b"before", b"after"]


def test_kafka_python_transactional_producer_on_a_three_node_cluster(cluster_factory):
    """kafka-python's transactional producer against partitions led by
    different brokers: the coordinator's markers reach every leader."""
    from kafka import KafkaProducer

    c = cluster_factory(3)
    topic = h.unique_topic("txn-kpy-cluster")
    c.create_topic(topic, 3, rf=3)
    leaders = {c.leader_of(topic, p) for p in range(3)}
    p = KafkaProducer(bootstrap_servers=c.bootstrap, transactional_id=h.unique_topic("tid"),
                      request_timeout_ms=20000)
    committed = [f"k{i}".encode() for i in range(9)]
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(9):
            p.send(topic, f"a{i}".encode(), partition=i % 3)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        for i, v in enumerate(committed):
            p.send(topic, v, partition=i % 3)
        p.commit_transaction()
    finally:
        p.close(timeout=5)
    assert sorted(values_read(c.bootstrap, topic, 3, "read_committed")) == sorted(committed)
    assert len(values_read(c.bootstrap, topic, 3, "read_uncommitted")) == 18
    assert len(leaders) > 1, f"all partitions led by one broker: {leaders}"


def test_kafka_python_transactional_producer_commit_and_abort(broker):
    from kafka import KafkaProducer

    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-kpy")
    h.create_topic(a, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=h.unique_topic("tid"),
                      request_timeout_ms=20000)
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"kept", partition=0)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"dropped", partition=0)
        p.flush()
        p.abort_transaction()
    finally:
        p.close(timeout=5)
    assert values_read(broker.bootstrap, topic, 1, "read_committed") == [b"kept"]
    assert values_read(broker.bootstrap, topic, 1, "read_uncommitted") == [b"kept", b"dropped"]


def test_read_committed_consumer_waits_for_the_commit(broker):
    """A read_committed consumer polling while the transaction is open gets its
    records right after the commit (not before)."""
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("txn-wait")
    h.create_topic(a, topic, 1)
    p = txn_producer(broker.bootstrap, h.unique_topic("tid"))
    p.init_transactions(TXN_TIMEOUT_S)
    c = h.consumer(broker.bootstrap, **{"isolation.level": "read_committed", "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        p.begin_transaction()
        produce_txn(p, topic, [b"x"])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            assert m is None or m.error(), f"read an uncommitted record: {m.value()!r}"
        p.commit_transaction(TXN_TIMEOUT_S)
        m = h.poll_one(c, timeout=20)
        assert m.error() is None and m.value() == b"x"
    finally:
        c.close()
