"""KIP-1066 on a 3-node cluster: a broker whose every log directory is
cordoned (`cordoned.log.dirs`, set dynamically through confluent-kafka's
IncrementalAlterConfigs) gets no replica of a new topic; with every broker
cordoned CreateTopics fails with INVALID_REPLICATION_FACTOR; uncordoning makes
brokers eligible again. The broker reports its cordoned directories through
the metadata log, so the controller's placement sees the change.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

import helpers as h
from cluster import Cluster, admin_client, cluster_fixture, log

import pytest

PROPAGATION_S = 30.0


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def cordon(c: Cluster, broker: int, value: str | None) -> None:
    """Sets (or deletes, `None`) broker `broker`'s dynamic `cordoned.log.dirs`."""
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("cordoned.log.dirs", value or "", incremental_operation=op)
    res = ConfigResource(ConfigResource.Type.BROKER, str(broker), incremental_configs=[entry])
    a = admin_client(c.bootstrap)
    a.incremental_alter_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)


def try_create(c: Cluster, name: str, partitions: int, rf: int) -> KafkaException | None:
    a = admin_client(c.bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf)],
                         operation_timeout=10)
    try:
        fs[name].result(timeout=30)
        return None
    except KafkaException as e:
        return e


def replica_sets(c: Cluster, topic: str, partitions: int) -> list[list[int]] | None:
    for n in c.serving():
        v = c.view(n.node_id)
        if v is None:
            continue
        states = [v.partition(topic, p) for p in range(partitions)]
        if all(s is not None for s in states):
            return [list(s.replicas) for s in states]
    return None


def placed_on(c: Cluster, name: str, partitions: int) -> list[list[int]]:
    assert try_create(c, name, partitions, rf=2) is None
    found: list[list[int]] = []

    def known():
        nonlocal found
        found = replica_sets(c, name, partitions) or []
        return bool(found)
    h.wait_until(known, timeout=30, message=f"{name} in metadata")
    return found


@pytest.mark.timeout(240)
def test_cordoned_brokers_get_no_new_replicas_and_all_cordoned_refuses_create_topics(cluster_factory):
    c = cluster_factory(3)
    cordon(c, 2, "*")
    # The broker registers the change with the controller as it applies the
    # config record; until then placement may still pick it.
    deadline = time.monotonic() + PROPAGATION_S
    n = 0
    while True:
        n += 1
        sets = placed_on(c, h.unique_topic(f"probe{n}"), 6)
        if all(2 not in r for r in sets):
            break
        assert time.monotonic() < deadline, f"broker 2 still receives replicas: {sets}"
        time.sleep(0.5)
    # Every new partition of a fresh rf=2 topic avoids broker 2.
    sets = placed_on(c, h.unique_topic("avoid"), 12)
    log(f"replicas with broker 2 cordoned: {sets}")
    assert all(len(r) == 2 and 2 not in r for r in sets), sets
    # rf=3 cannot be met by the two eligible brokers.
    err = try_create(c, h.unique_topic("rf3"), 1, 3)
    assert err is not None and err.args[0].name() == "INVALID_REPLICATION_FACTOR", err

    cordon(c, 1, "*")
    cordon(c, 3, "*")
    refused: list[KafkaException | None] = [None]

    def all_cordoned():
        refused[0] = try_create(c, h.unique_topic("refused"), 1, 1)
        return refused[0] is not None
    h.wait_until(all_cordoned, timeout=PROPAGATION_S, message="CreateTopics refused")
    e = refused[0].args[0]
    assert e.name() == "INVALID_REPLICATION_FACTOR", e
    assert "cordoned" in e.str(), e.str()

    # Uncordoning broker 2 makes it (alone) eligible again.
    cordon(c, 2, None)
    placed: list[list[list[int]]] = []

    def reopened():
        name = h.unique_topic("reopened")
        if try_create(c, name, 1, 1) is not None:
            return False
        h.wait_until(lambda: replica_sets(c, name, 1) is not None, timeout=30, message=name)
        placed.append(replica_sets(c, name, 1) or [])
        return True
    h.wait_until(reopened, timeout=PROPAGATION_S, message="CreateTopics accepted again")
    assert placed[-1] == [[2]], placed


@pytest.mark.timeout(180)
def test_statically_cordoned_brokers_refuse_create_topics_from_their_registration(cluster_factory):
    # Every node starts with all its directories cordoned: the registration
    # itself carries them, no dynamic change is involved.
    c = cluster_factory(3, overrides={"cordoned.log.dirs": "*"})
    refused: list[KafkaException | None] = [None]

    def answered():
        refused[0] = try_create(c, h.unique_topic("static"), 1, 1)
        # Retriable answers while the controller settles are retried.
        return refused[0] is not None and not refused[0].args[0].retriable()
    h.wait_until(answered, timeout=PROPAGATION_S, message="CreateTopics answered")
    e = refused[0].args[0]
    assert e.name() == "INVALID_REPLICATION_FACTOR", e
    assert "3 broker(s) have all their log directories cordoned" in e.str(), e.str()
