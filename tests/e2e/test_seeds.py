"""The user's article samples, run against samsa.

Lines marked "verbatim" are the article's code unchanged except for the
bootstrap address (the article uses a fixed host; here it is the test broker).
Everything else is scaffolding that feeds the samples or checks their effect
through an independent client.

Not covered here (next issue, consumer groups): the article's group-based
consumer that passes group_id=... and calls consumer.commit(). samsa has no
group coordinator yet; add that sample when FindCoordinator/JoinGroup/
SyncGroup/Heartbeat/OffsetCommit/OffsetFetch land.
"""

from __future__ import annotations

import json
import threading
import time

from kafka import KafkaConsumer, KafkaProducer

import helpers as h

ORDER_EVENT = {
    'event_type': 'order_created',
    'order_id': 'ORD-2024-001',
    'customer_id': 'CUST-987',
    'amount': 249.99,
    'timestamp': '2024-01-15T10:30:00Z',
}


def run_sample_a(bootstrap: str) -> None:
    event = dict(ORDER_EVENT)
    # --- verbatim (a) ---
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        value_serializer=lambda v: json.dumps(v).encode('utf-8'),
        acks='all',
        retries=3,
        batch_size=16384,
        linger_ms=10
    )
    producer.send('orders', value=event)
    producer.flush()
    # --- end verbatim ---
    producer.close(timeout=10)


def serialize_order(order: dict) -> bytes:
    return json.dumps(order).encode('utf-8')


def make_orders():
    """Three orders, each with a few lifecycle events that must stay in order."""
    orders = []
    for step in ('order_created', 'order_paid', 'order_shipped'):
        for n in (1, 2, 3):
            orders.append({'event_type': step, 'order_id': f'ORD-2024-00{n}',
                           'customer_id': f'CUST-{n}', 'amount': 10.0 * n})
    return orders


def run_sample_b(bootstrap: str, orders) -> None:
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks='all', retries=3,
                             batch_size=16384, linger_ms=10)
    for order in orders:
        order_id = order['order_id']
        # --- verbatim (b) ---
        producer.send('orders', key=order_id.encode('utf-8'), value=serialize_order(order))
        # --- end verbatim ---
    producer.flush()
    producer.close(timeout=10)


def run_sample_c(bootstrap: str, expected: int, timeout_s: float = 30.0):
    """The article's consumer loop, iterated until ``expected`` messages arrived.

    The sample iterates ``for message in consumer`` with no consumer_timeout_ms,
    i.e. forever. Rather than changing its constructor, the loop runs in a
    daemon thread that stops itself once it has what we expect; the test waits
    for that thread with a bound and fails with a clear message otherwise.
    """
    seen = []
    errors = []

    def loop():
        try:
            # --- verbatim (c) ---
            consumer = KafkaConsumer(
                'orders',
                bootstrap_servers=[bootstrap],
                auto_offset_reset='earliest',
                enable_auto_commit=False
            )
            for message in consumer:
                # --- end verbatim (the article processes each message here) ---
                seen.append(message)
                if len(seen) >= expected:
                    break
            consumer.close()
        except Exception as e:  # surfaced to the test below
            errors.append(e)

    th = threading.Thread(target=loop, name="article-consumer", daemon=True)
    th.start()
    th.join(timeout_s)
    assert not errors, errors
    assert not th.is_alive(), f"article consumer got {len(seen)}/{expected} messages in {timeout_s}s"
    return seen


def test_sample_a_json_producer(broker):
    run_sample_a(broker.bootstrap)
    # Auto-created with the default single partition; read back with another client.
    got = h.consume_partitions(broker.bootstrap, 'orders', [0])[0]
    assert len(got) == 1
    assert got[0].offset == 0 and got[0].key is None
    assert json.loads(got[0].value) == ORDER_EVENT


def test_sample_b_keyed_orders_keep_per_order_sequence(broker_factory):
    b = broker_factory("num.partitions=3")
    orders = make_orders()
    run_sample_b(b.bootstrap, orders)

    # The sample relied on auto-creation, which must have used num.partitions=3.
    assert h.topic_partitions(h.admin(b.bootstrap), 'orders') == 3
    got = h.consume_partitions(b.bootstrap, 'orders', [0, 1, 2])
    assert sum(len(v) for v in got.values()) == len(orders)
    events_by_order = {}
    partition_of = {}
    for part, recs in got.items():
        assert [r.offset for r in recs] == list(range(len(recs)))
        for r in recs:
            order = json.loads(r.value)
            assert r.key == order['order_id'].encode('utf-8')
            partition_of.setdefault(r.key, set()).add(part)
            events_by_order.setdefault(order['order_id'], []).append(order['event_type'])
    # All events of one order are on one partition, in the order they were sent.
    assert all(len(ps) == 1 for ps in partition_of.values()), partition_of
    for order_id, events in events_by_order.items():
        assert events == ['order_created', 'order_paid', 'order_shipped'], order_id


def test_sample_c_consumer_reads_what_a_and_b_produced(broker):
    run_sample_a(broker.bootstrap)
    orders = make_orders()
    run_sample_b(broker.bootstrap, orders)

    started = time.monotonic()
    messages = run_sample_c(broker.bootstrap, expected=1 + len(orders))
    assert time.monotonic() - started < 30
    assert [m.offset for m in messages] == list(range(1 + len(orders)))
    values = [json.loads(m.value) for m in messages]
    assert values[0] == ORDER_EVENT
    assert values[1:] == orders
    assert [m.key for m in messages[1:]] == [o['order_id'].encode('utf-8') for o in orders]
