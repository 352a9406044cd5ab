"""Compaction of transactional data (Kafka's rules), with confluent-kafka: the
cleaner removes aborted transactions' records, so even a read_uncommitted
consumer no longer sees them, while every key's latest committed value stays
(read_committed and read_uncommitted agree), at its original offset."""

from __future__ import annotations

import time

import helpers as h

TXN_TIMEOUT_S = 30.0
KEYS = [f"key-{i}".encode() for i in range(8)]
ROUNDS = 24


def test_cleaner_removes_aborted_records_and_keeps_latest_committed(broker_factory):
    b = broker_factory("log.cleaner.backoff.ms=200")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("txn-compact")
    h.create_topic(a, t, config={
        "cleanup.policy": "compact",
        "segment.ms": "300",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })
    p = h.producer(b.bootstrap, **{"transactional.id": h.unique_topic("tid"),
                                    "enable.idempotence": True,
                                    "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(TXN_TIMEOUT_S)
    pad = b"p" * 300
    latest: dict[bytes, bytes] = {}
    for r in range(ROUNDS):
        if r % 6 == 5:
            time.sleep(0.35)  # past segment.ms: the next append rolls
        commit = r % 3 != 1
        p.begin_transaction()
        for k in KEYS:
            v = (b"committed:%d:" if commit else b"ABORTED:%d:") % r + pad
            p.produce(t, key=k, value=v, partition=0)
            if commit:
                latest[k] = v
        # A key only aborted transactions ever wrote.
        if not commit:
            p.produce(t, key=b"only-aborted-%d" % r, value=b"ABORTED:%d" % r, partition=0)
        assert p.flush(TXN_TIMEOUT_S) == 0
        if commit:
            p.commit_transaction(TXN_TIMEOUT_S)
        else:
            p.abort_transaction(TXN_TIMEOUT_S)
    # Past segment.ms, the next append rolls: every transaction above is then
    # in a sealed segment below the last stable offset, which the cleaner may clean.
    time.sleep(0.5)
    p.begin_transaction()
    p.produce(t, key=b"last", value=b"committed:last", partition=0)
    assert p.flush(TXN_TIMEOUT_S) == 0
    p.commit_transaction(TXN_TIMEOUT_S)
    latest[b"last"] = b"committed:last"
    _, end = h.watermarks(b.bootstrap, t)

    def cleaned():
        got = h.consume_partitions(b.bootstrap, t, [0], **{"isolation.level": "read_uncommitted"})[0]
        if any(r.value.startswith(b"ABORTED") for r in got):
            return None
        keys = [r.key for r in got]
        return got if len(keys) == len(set(keys)) else None

    got = h.wait_until(cleaned, timeout=60, interval=0.5,
                       message="aborted records removed and one record per key")
    by_key = {r.key: r for r in got}
    assert {k: r.value for k, r in by_key.items()} == latest
    committed = h.consume_partitions(b.bootstrap, t, [0], **{"isolation.level": "read_committed"})[0]
    assert [(r.offset, r.key, r.value) for r in committed] == [(r.offset, r.key, r.value) for r in got]
    assert h.watermarks(b.bootstrap, t) == (0, end), "cleaning moves neither the start nor the end"
    # The cleaned log (segments swapped, .txnindex rewritten) survives a
    # crash: after kill -9 both views are what they were.
    b.kill()
    b.start()
    for level in ("read_uncommitted", "read_committed"):
        again = h.consume_partitions(b.bootstrap, t, [0], **{"isolation.level": level})[0]
        assert [(r.offset, r.key, r.value) for r in again] == [(r.offset, r.key, r.value) for r in got], level
    # The producer goes on: its state survived the clean.
    p.begin_transaction()
    p.produce(t, key=KEYS[0], value=b"after", partition=0)
    assert p.flush(TXN_TIMEOUT_S) == 0
    p.commit_transaction(TXN_TIMEOUT_S)
    last = h.consume_partitions(b.bootstrap, t, [0], **{"isolation.level": "read_committed"})[0]
    assert [r.value for r in last if r.key == KEYS[0]][-1] == b"after"
