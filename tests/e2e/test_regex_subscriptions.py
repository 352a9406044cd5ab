"""KIP-848 regex subscriptions with confluent-kafka (`group.protocol=consumer`,
`subscribe(["^prefix-orders-.*"])`): librdkafka sends the pattern to the broker as
ConsumerGroupHeartbeat's SubscribedTopicRegex and the group coordinator resolves it.

kafka-python (3.0.x) has no KIP-848 consumer (it subscribes to patterns client-side
with the classic protocol), so it is not exercised here.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError

import helpers as h

HEARTBEAT_MS = 500
# Kafka resolves a group's regexes again at most every 10 s (REGEX_BATCH_REFRESH_MIN_INTERVAL_MS).
REFRESH_S = 10


def regex_consumer(bootstrap: str, group: str) -> Consumer:
    c = h.base_conf(bootstrap)
    c.update({
        "group.id": group,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    })
    return Consumer(c)


class Member:
    """A consumer polled on demand; remembers errors it saw."""

    def __init__(self, bootstrap: str, group: str, pattern: str):
        self.c = regex_consumer(bootstrap, group)
        self.errors: list[KafkaError] = []
        self.c.subscribe([pattern])

    def pump(self) -> None:
        for m in self.c.consume(num_messages=100, timeout=0.1):
            if m.error():
                self.errors.append(m.error())

    def assignment(self) -> set[tuple[str, int]]:
        self.pump()
        return {(tp.topic, tp.partition) for tp in self.c.assignment()}

    def close(self) -> None:
        self.c.close()


def wait_assigned(members: list[Member], want: set[tuple[str, int]], timeout: float, what: str):
    """Waits until every member has partitions and together they hold exactly ``want``,
    none twice."""
    def ok():
        got = [m.assignment() for m in members]
        union = set().union(*got)
        return union == want and sum(len(g) for g in got) == len(union) and all(got) and got
    return h.wait_until(ok, timeout=timeout, interval=0.1, message=what)


def parts(topic: str, n: int) -> set[tuple[str, int]]:
    return {(topic, p) for p in range(n)}


def test_regex_subscription_follows_created_and_deleted_topics(broker_factory):
    b = broker_factory(f"group.consumer.heartbeat.interval.ms={HEARTBEAT_MS}",
                       f"group.consumer.min.heartbeat.interval.ms={HEARTBEAT_MS}")
    a = h.admin(b.bootstrap)
    pfx = h.unique_topic("rx")
    orders1, orders2, payments = f"{pfx}-orders-1", f"{pfx}-orders-2", f"{pfx}-payments"
    for t, n in ((orders1, 2), (orders2, 1), (payments, 2)):
        h.create_topic(a, t, partitions=n)

    m1 = Member(b.bootstrap, f"{pfx}-group", f"^{pfx}-orders-.*")
    try:
        # Existing matching topics only.
        wait_assigned([m1], parts(orders1, 2) | parts(orders2, 1), 30, "the existing orders topics")

        # Records of a matching topic are delivered.
        p = h.producer(b.bootstrap)
        p.produce(orders2, value=b"hello", partition=0)
        p.flush(10)
        got = h.wait_until(lambda: [x for x in m1.c.consume(num_messages=10, timeout=0.2)
                                    if not x.error()], timeout=20, message="a record of orders-2")
        assert got[0].value() == b"hello" and got[0].topic() == orders2

        # A matching topic created after subscribing comes within the refresh interval;
        # a non-matching one never does.
        orders3, refunds = f"{pfx}-orders-3", f"{pfx}-refunds"
        h.create_topic(a, orders3, partitions=2)
        h.create_topic(a, refunds, partitions=1)
        started = time.monotonic()
        wait_assigned([m1], parts(orders1, 2) | parts(orders2, 1) | parts(orders3, 2),
                      REFRESH_S + 20, "orders-3 assigned")
        assert time.monotonic() - started < REFRESH_S + 20

        # A deleted topic leaves the assignment.
        a.delete_topics([orders1], operation_timeout=10)[orders1].result(timeout=20)
        wait_assigned([m1], parts(orders2, 1) | parts(orders3, 2), 30, "orders-1 gone")

        # A second member with the same pattern shares the partitions.
        m2 = Member(b.bootstrap, f"{pfx}-group", f"^{pfx}-orders-.*")
        try:
            got = wait_assigned([m1, m2], parts(orders2, 1) | parts(orders3, 2), 40,
                                "two members sharing the orders partitions")
            assert not any(t == payments or t == refunds for g in got for t, _ in g)
        finally:
            m2.close()
        assert not m1.errors, m1.errors
    finally:
        m1.close()


def test_invalid_regex_is_reported_to_the_consumer(broker_factory):
    b = broker_factory(f"group.consumer.heartbeat.interval.ms={HEARTBEAT_MS}",
                       f"group.consumer.min.heartbeat.interval.ms={HEARTBEAT_MS}")
    pfx = h.unique_topic("rxbad")
    h.create_topic(h.admin(b.bootstrap), f"{pfx}-orders-1", partitions=1)
    # librdkafka's own check (POSIX ERE) takes an unmatched ")" as a literal; RE2 refuses it.
    m = Member(b.bootstrap, f"{pfx}-group", f"^{pfx}-orders-1)")
    try:
        h.wait_until(lambda: m.assignment() is not None and m.errors, timeout=30, interval=0.1,
                     message="an error on the consumer")
        # librdkafka makes it a fatal error naming the broker's INVALID_REGULAR_EXPRESSION.
        assert m.errors and all(
            e.code() == KafkaError.INVALID_REGULAR_EXPRESSION
            or (e.code() == KafkaError._FATAL and "regular expression is not valid" in e.str())
            for e in m.errors), m.errors
        assert m.c.assignment() == []
    finally:
        m.close()
    assert b.alive()
