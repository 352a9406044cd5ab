"""ListOffsets through confluent-kafka's AdminClient.list_offsets: earliest,
latest, by timestamp and max timestamp (KIP-734)."""

from __future__ import annotations

from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec

import helpers as h


def lookup(a, topic, spec):
    tp = TopicPartition(topic, 0)
    res = a.list_offsets({tp: spec}, isolation_level=IsolationLevel.READ_UNCOMMITTED)
    info = res[tp].result(timeout=h.CLIENT_TIMEOUT_S)
    return info.offset, info.timestamp


def test_list_offsets_specs(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("lo")
    h.create_topic(a, t)
    base = 1_700_000_000_000
    # Out-of-order timestamps: the largest is the second record.
    stamps = [base + 10, base + 50, base + 20, base + 30]
    p = h.producer(broker.bootstrap, linger_ms=0)
    for i, ts in enumerate(stamps):
        log = h.produce_and_flush(p, [{"value": f"v{i}".encode(), "timestamp": ts}], t)
        assert not log.errors, log.errors
    assert lookup(a, t, OffsetSpec.earliest())[0] == 0
    assert lookup(a, t, OffsetSpec.latest())[0] == 4, "latest is the log end offset"
    assert lookup(a, t, OffsetSpec.max_timestamp()) == (1, base + 50)
    assert lookup(a, t, OffsetSpec.for_timestamp(base + 25))[0] == 1, "first record with ts >= 25"
    assert lookup(a, t, OffsetSpec.for_timestamp(base + 51))[0] == -1, "no record that late"
