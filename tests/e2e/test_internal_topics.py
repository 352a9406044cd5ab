"""Internal topics: never auto-created by clients, never written by clients."""

from __future__ import annotations

from confluent_kafka import KafkaError

import helpers as h


def test_internal_topic_is_not_auto_created_and_refuses_client_writes(broker):
    a = h.admin(broker.bootstrap)
    md = a.list_topics(topic="__consumer_offsets", timeout=h.CLIENT_TIMEOUT_S)
    t = md.topics["__consumer_offsets"]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t.error
    # A group makes the coordinator create it, with offsets.topic.num.partitions partitions.
    c = h.consumer(broker.bootstrap, **{"group.id": "internal-check"})
    try:
        c.committed([], timeout=h.CLIENT_TIMEOUT_S)
        from confluent_kafka import TopicPartition
        c.committed([TopicPartition("x", 0)], timeout=h.CLIENT_TIMEOUT_S)
    finally:
        c.close()
    md = h.wait_until(lambda: (lambda m: m if m.topics["__consumer_offsets"].error is None else None)(
        a.list_topics(topic="__consumer_offsets", timeout=h.CLIENT_TIMEOUT_S)),
        message="__consumer_offsets to exist")
    assert len(md.topics["__consumer_offsets"].partitions) == 50
    p = h.producer(broker.bootstrap)
    log = h.produce_and_flush(p, [{"value": b"forged"}], "__consumer_offsets")
    assert log.errors and log.errors[0][0].code() == KafkaError.TOPIC_EXCEPTION, log.errors
