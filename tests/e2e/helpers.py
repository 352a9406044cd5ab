"""Client-side helpers shared by the end-to-end tests (confluent-kafka based)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

# librdkafka timeouts are kept well below the per-test pytest timeout so a
# misbehaving broker shows up as a clear client error rather than a hang.
CLIENT_TIMEOUT_S = 30.0


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
        time.sleep(interval)


def base_conf(bootstrap: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 10000,
        "broker.address.family": "v4",
        "log.connection.close": False,
    }


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(base_conf(bootstrap))


def producer(bootstrap: str, **conf) -> Producer:
    c = base_conf(bootstrap)
    c.update({"message.timeout.ms": 20000, "linger.ms": 5})
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(c)


def consumer(bootstrap: str, **conf) -> Consumer:
    # group.id is required by the Python client's Consumer, but we only ever
    # assign() partitions and never commit, so no group coordinator is used.
    c = base_conf(bootstrap)
    c.update({
        "group.id": "samsa-e2e-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    })
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(c)


def create_topic(a: AdminClient, name: str, partitions: int = 1, config: dict | None = None) -> None:
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=10)
    fs[name].result(timeout=CLIENT_TIMEOUT_S)
    wait_until(lambda: topic_partitions(a, name) == partitions, message=f"topic {name} in metadata")


def topic_partitions(a: AdminClient, name: str) -> int | None:
    """Number of partitions the broker reports for ``name``, None if absent.
    Lists all topics (a Metadata request for all topics never auto-creates)."""
    md = a.list_topics(timeout=CLIENT_TIMEOUT_S)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


@dataclass
class Delivery:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp: int


@dataclass
class DeliveryLog:
    ok: list[Delivery] = field(default_factory=list)
    errors: list[tuple[KafkaError, bytes | None]] = field(default_factory=list)

    def callback(self, err, msg):
        if err is not None:
            self.errors.append((err, msg.value()))
        else:
            self.ok.append(Delivery(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                    msg.value(), msg.headers(), msg.timestamp()[1]))


def produce_and_flush(p: Producer, items, topic: str, timeout: float = CLIENT_TIMEOUT_S) -> DeliveryLog:
    """Produce ``items`` (dicts of produce() kwargs) and wait for every delivery report."""
    log = DeliveryLog()
    n = 0
    for kw in items:
        while True:
            try:
                p.produce(topic, on_delivery=log.callback, **kw)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    assert len(log.ok) + len(log.errors) == n, "missing delivery reports"
    return log


@dataclass
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp_type: int
    timestamp: int


def consume_partitions(bootstrap: str, topic: str, partitions, start=OFFSET_BEGINNING,
                       timeout: float = CLIENT_TIMEOUT_S, **conf) -> dict[int, list[Consumed]]:
    """Read each partition from ``start`` until the broker reports end-of-partition
    for all of them. Returns {partition: [records in offset order]}."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        return drain(c, partitions, timeout)
    finally:
        c.close()


def drain(c: Consumer, partitions, timeout: float = CLIENT_TIMEOUT_S) -> dict[int, list[Consumed]]:
    out: dict[int, list[Consumed]] = {p: [] for p in partitions}
    at_eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while at_eof != set(partitions):
        if time.monotonic() > deadline:
            raise AssertionError(f"no end-of-partition for {set(partitions) - at_eof} within {timeout}s; "
                                 f"got {sum(len(v) for v in out.values())} records")
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add(m.partition())
                continue
            raise KafkaException(m.error())
        at_eof.discard(m.partition())
        ts_type, ts = m.timestamp()
        out[m.partition()].append(Consumed(m.partition(), m.offset(), m.key(), m.value(),
                                           m.headers(), ts_type, ts))
    return out


def poll_one(c: Consumer, timeout: float = 20.0):
    """Next message or event from ``c``. (Do not use a Message in a boolean
    context: it has __len__, so an empty or EOF message is falsy.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is not None:
            return m
    raise AssertionError(f"consumer returned nothing within {timeout}s")


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=CLIENT_TIMEOUT_S, cached=False)
    finally:
        c.close()
