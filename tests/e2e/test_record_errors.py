"""Produce v8+ record errors (KIP-467): a batch refused for some of its
records names every offending record, so librdkafka fails exactly those with
INVALID_RECORD and the rest of the batch with its local
_INVALID_DIFFERENT_RECORD ("an invalid record in the same batch caused the
failure of this message too"; librdkafka does not retry them itself, the
application may produce them again). Nothing of a refused batch reaches the
log."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError

import helpers as h


def one_batch_producer(bootstrap: str):
    # Everything produced below fits one batch per partition: librdkafka
    # waits linger.ms before sending, far longer than producing takes.
    return h.producer(bootstrap, linger_ms=2000, batch_num_messages=10000,
                      enable_idempotence=False, retries=5)


def split(log):
    """(indexes failed with INVALID_RECORD, indexes failed for another
    record, other failures) of a delivery log whose values are b"v<index>"."""
    bad, collateral, other = [], [], []
    for err, value in log.errors:
        index = int(value[1:])
        if err.code() == KafkaError.INVALID_RECORD:
            bad.append(index)
        elif err.code() == KafkaError._INVALID_DIFFERENT_RECORD:
            collateral.append(index)
        else:
            other.append((index, err))
    return sorted(bad), sorted(collateral), other


def test_keyless_records_of_a_compacted_batch_fail_alone(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("rec-errors")
    h.create_topic(a, t, config={"cleanup.policy": "compact"})
    keyless = [i for i in range(100) if i % 10 == 3]
    keyed = [i for i in range(100) if i % 10 != 3]
    items = [{"value": b"v%d" % i} if i in keyless else {"key": b"k%d" % i, "value": b"v%d" % i}
             for i in range(100)]
    p = one_batch_producer(broker.bootstrap)
    log = h.produce_and_flush(p, items, t)

    bad, collateral, other = split(log)
    assert (bad, collateral, other, log.ok) == (keyless, keyed, [], []), log.errors[:3]
    assert h.watermarks(broker.bootstrap, t) == (0, 0), "nothing of the refused batch was appended"

    # The application produces the other 90 again: all are delivered.
    log = h.produce_and_flush(p, [items[i] for i in keyed], t)
    assert not log.errors, log.errors[:3]
    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [r.value for r in got] == [b"v%d" % i for i in keyed]


def test_records_with_out_of_range_timestamps_fail_alone(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("rec-ts")
    h.create_topic(a, t, config={"message.timestamp.before.max.ms": "3600000"})
    now_ms = int(time.time() * 1000)
    stale = [2, 5, 11]
    items = [{"key": b"k", "value": b"v%d" % i,
              "timestamp": now_ms - (86_400_000 if i in stale else 0)} for i in range(20)]
    log = h.produce_and_flush(one_batch_producer(broker.bootstrap), items, t)

    bad, collateral, other = split(log)
    assert (bad, other) == (stale, []), log.errors[:3]
    assert collateral == [i for i in range(20) if i not in stale]
    assert h.watermarks(broker.bootstrap, t) == (0, 0)
