"""Kafka's dedicated-controller layout: a `process.roles=controller` node holds
the metadata quorum and serves no Kafka clients; three `process.roles=broker`
nodes carry the data. When a broker leading a partition is killed, the
controller (not a broker) notices the missing heartbeats, fences it and moves
leadership to an in-sync replica; acks=all produce then continues on the new
leader with nothing acknowledged lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import helpers as h
from conftest import Broker, free_port, samsa_bin

TIMEOUTS = [
    "broker.session.timeout.ms=1000",
    "broker.heartbeat.interval.ms=200",
    "controller.quorum.election.timeout.ms=500",
    "replica.lag.time.max.ms=2000",
    "replica.fetch.wait.max.ms=200",
    "min.insync.replicas=2",
    "offsets.topic.replication.factor=3",
]


class Node(Broker):
    """One `samsa serve --config` process with the given roles."""

    def __init__(self, binary: str, workdir: Path, node_id: int, roles: str, voters: str,
                 controller_port: int | None):
        super().__init__(binary, workdir, [], name=f"node{node_id}")
        self.node_id = node_id
        lines = [f"node.id={node_id}", f"process.roles={roles}",
                 "controller.listener.names=CONTROLLER", f"controller.quorum.voters={voters}",
                 f"log.dirs={self.data_dir}", *TIMEOUTS]
        if roles == "controller":
            # Readiness = the controller port accepts connections.
            self.port = controller_port
            lines.append(f"listeners=CONTROLLER://127.0.0.1:{controller_port}")
        else:
            lines.append(f"listeners=PLAINTEXT://127.0.0.1:{self.port}")
        self.config_path = workdir / "server.properties"
        self.config_path.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self.binary, "serve", "--config", str(self.config_path)]


@pytest.fixture
def layout(request, tmp_path):
    binary = samsa_bin()
    cport = free_port()
    voters = f"100@127.0.0.1:{cport}"
    controller = Node(binary, tmp_path / "controller", 100, "controller", voters, cport)
    brokers = {i: Node(binary, tmp_path / f"b{i}", i, "broker", voters, None) for i in (1, 2, 3)}
    everyone = [controller, *brokers.values()]
    request.node._samsa_brokers = everyone
    controller.start()
    for b in brokers.values():
        b.start()
    yield controller, brokers
    for n in everyone:
        if n.alive():
            n.stop()
    complaints = [c for c in (n.teardown() for n in everyone) if c]
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


def partition_state(bootstrap: str, topic: str, partition: int):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=5)
    p = md.topics[topic].partitions[partition]
    return p.leader, sorted(p.isrs), sorted(md.brokers)


@pytest.mark.timeout(120)
def test_dedicated_controller_fences_a_dead_leader(layout):
    controller, brokers = layout
    boot = ",".join(b.bootstrap for b in brokers.values())
    h.wait_until(lambda: partition_state_brokers(boot) == [1, 2, 3], timeout=30,
                 message="three registered, unfenced brokers")
    admin = AdminClient({"bootstrap.servers": boot})
    topic = h.unique_topic("dedicated")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(30)
    h.wait_until(lambda: partition_state(boot, topic, 0)[1] == [1, 2, 3], timeout=30,
                 message="a full ISR")

    acked: list[tuple[int, bytes]] = []

    def report(err, msg):
        if err is None:
            acked.append((msg.offset(), msg.value()))

    producer = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 30000})
    for i in range(200):
        producer.produce(topic, f"before-{i}".encode(), on_delivery=report)
    assert producer.flush(30) == 0

    leader = partition_state(boot, topic, 0)[0]
    brokers[leader].kill()
    t0 = time.monotonic()
    others = ",".join(b.bootstrap for i, b in brokers.items() if i != leader)

    def moved():
        new, isr, live = partition_state(others, topic, 0)
        return new not in (-1, leader) and leader not in live and (new, isr)
    new, isr = h.wait_until(moved, timeout=20, interval=0.05,
                            message=f"the controller to fence broker {leader} and elect a new leader")
    print(f"\ndedicated controller: broker {leader} fenced, leader {new} (ISR {isr}) "
          f"after {time.monotonic() - t0:.2f}s")
    assert new in isr and leader not in isr

    for i in range(200):
        producer.produce(topic, f"after-{i}".encode(), on_delivery=report)
    assert producer.flush(30) == 0
    assert len(acked) == 400

    consumer = Consumer({"bootstrap.servers": others, "group.id": h.unique_topic("g"),
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    read: dict[int, bytes] = {}
    deadline = time.monotonic() + 30
    while len(read) < 400 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            read[m.offset()] = m.value()
    consumer.close()
    for offset, value in acked:
        assert read.get(offset) == value, f"acknowledged record at offset {offset} lost or moved"
    assert sorted(read) == list(range(len(read))), "offsets are dense"


def partition_state_brokers(bootstrap: str) -> list[int]:
    try:
        return sorted(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).brokers)
    except Exception:
        return []


@pytest.mark.timeout(120)
def test_broker_stops_promptly_while_a_metadata_write_waits(layout):
    """SIGTERM reaches a broker while a client's CreateTopics waits on a
    controller that does not answer (frozen with SIGSTOP). The broker's own
    controlled shutdown queues behind that write; shutdown must still finish
    within its bounds (5 s of controlled shutdown, then in-flight metadata
    waits are released) and exit 0, not sit out every timeout in turn."""
    controller, brokers = layout
    boot = ",".join(b.bootstrap for b in brokers.values())
    h.wait_until(lambda: partition_state_brokers(boot) == [1, 2, 3], timeout=30,
                 message="three registered, unfenced brokers")
    victim = brokers[1]
    os.kill(controller.pid, signal.SIGSTOP)
    try:
        admin = AdminClient({"bootstrap.servers": victim.bootstrap})
        topic = h.unique_topic("frozen")
        pending = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                                      request_timeout=60, operation_timeout=60)
        time.sleep(1.0)  # the request is now waiting inside the broker
        assert not pending[topic].done(), "CreateTopics answered while the controller is frozen"
        t0 = time.monotonic()
        victim.stop()  # exit status 0 within the fixture's stop timeout
        took = time.monotonic() - t0
        print(f"\nbroker stopped {took:.2f}s after SIGTERM with a metadata write pending")
        assert took < 9.0, f"shutdown took {took:.1f}s"
        assert "shut down cleanly" in victim.log_path.read_text()
    finally:
        os.kill(controller.pid, signal.SIGCONT)
