"""Group-level configs (Kafka 4.x's GROUP config resource, type 32) through
confluent-kafka's AdminClient and the samsa CLI: validated against the broker's
bounds, listed by DescribeConfigs, used by the KIP-848 coordinator (the
ConsumerGroupHeartbeat answers carry the group's heartbeat interval) and kept
across a restart; in a 3-node cluster a group config set through any node is
used by whichever node coordinates the group, also after the coordinator is
killed and the group moves."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

import helpers as h
import kafka_wire as w
from cluster import cluster_fixture, find_coordinator_of
from conftest import samsa_bin

CONSUMER_GROUP_HEARTBEAT = 68
HB = "consumer.heartbeat.interval.ms"
ST = "consumer.session.timeout.ms"


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def describe(a, group: str) -> dict:
    res = ConfigResource(ResourceType.GROUP, group)
    return a.describe_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)


def alter(a, group: str, *entries):
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=list(entries))
    return a.incremental_alter_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)


# Errors a client retries: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
# NOT_COORDINATOR (right after a restart the coordinator partitions are loading).
RETRIABLE = {14, 15, 16}


def heartbeat_interval(bootstrap: str, group: str, member: str, topic: str) -> int:
    """One ConsumerGroupHeartbeat v0 join of ``member`` (retried, as a client would,
    while the coordinator is loading); returns the broker's heartbeat_interval_ms."""
    deadline = time.monotonic() + 30
    while True:
        error_code, interval = heartbeat_once(bootstrap, group, member, topic)
        if error_code in RETRIABLE and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        assert error_code == 0, error_code
        return interval


def heartbeat_once(bootstrap: str, group: str, member: str, topic: str) -> tuple[int, int]:
    header = w.i16(CONSUMER_GROUP_HEARTBEAT) + w.i16(0) + w.i32(7) + w.string("e2e") + b"\x00"
    s = w.compact_string
    body = (s(group) + s(member) + w.i32(0)  # group_id, member_id, member_epoch
            + s(None) + s(None)               # instance_id, rack_id
            + w.i32(30000)                    # rebalance_timeout_ms
            + w.uvarint(2) + s(topic)         # subscribed_topic_names: [topic]
            + s(None)                         # server_assignor
            + w.uvarint(1)                    # topic_partitions: []
            + b"\x00")                        # tagged fields
    sock = w.connect(bootstrap)
    try:
        resp = w.roundtrip(sock, w.frame(header + body))
    finally:
        sock.close()
    assert resp is not None
    # Response header v1: correlation id, tagged fields (empty).
    pos = 4 + 1
    pos += 4  # throttle_time_ms
    error_code = int.from_bytes(resp[pos:pos + 2], "big", signed=True)
    pos += 2
    if error_code != 0:
        return error_code, -1
    for _ in range(2):  # error_message, member_id: compact nullable strings
        n = resp[pos]  # both shorter than 127 bytes: a one-byte length
        pos += 1 + max(n - 1, 0)
    pos += 4  # member_epoch
    return 0, int.from_bytes(resp[pos:pos + 4], "big", signed=True)


def test_group_heartbeat_interval_is_validated_described_used_and_kept(broker):
    a = h.admin(broker.bootstrap)
    topic = h.unique_topic("gcfg")
    h.create_topic(a, topic)
    group = f"gcfg-{uuid.uuid4().hex[:8]}"

    # Out of the broker's group.consumer.min/max bounds, or unknown: refused.
    for name, value in [(HB, "100"), (HB, "16000"), (ST, "70000"), ("heartbeat.interval.ms", "7000")]:
        with pytest.raises(KafkaException) as e:
            alter(a, group, ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
        assert e.value.args[0].name() == "INVALID_CONFIG", e.value

    # Set before the group exists.
    alter(a, group, ConfigEntry(HB, "7000", incremental_operation=AlterConfigOpType.SET))
    cfg = describe(a, group)
    assert cfg[HB].value == "7000" and cfg[HB].source == ConfigSource.GROUP_CONFIG.value, cfg[HB]
    assert cfg[ST].value == "45000" and cfg[ST].source == ConfigSource.DEFAULT_CONFIG.value, cfg[ST]

    # A group.protocol=consumer consumer joins the group; the broker hands the
    # group's interval to its members.
    c = h.consumer(broker.bootstrap, **{"group.id": group, "group.protocol": "consumer"})
    try:
        c.subscribe([topic])
        h.wait_until(lambda: (c.poll(0.2), c.assignment())[1] != [], message="consumer assigned")
        assert heartbeat_interval(broker.bootstrap, group, uuid.uuid4().hex, topic) == 7000
        assert heartbeat_interval(broker.bootstrap, group + "-other", uuid.uuid4().hex, topic) == 5000
    finally:
        c.close()

    # Survives a restart; DELETE reverts to the broker default.
    broker.restart()
    a = h.admin(broker.bootstrap)
    assert describe(a, group)[HB].value == "7000"
    assert heartbeat_interval(broker.bootstrap, group, uuid.uuid4().hex, topic) == 7000
    alter(a, group, ConfigEntry(HB, None, incremental_operation=AlterConfigOpType.DELETE))
    cfg = describe(a, group)
    assert cfg[HB].value == "5000" and cfg[HB].source == ConfigSource.DEFAULT_CONFIG.value, cfg[HB]
    assert heartbeat_interval(broker.bootstrap, group, uuid.uuid4().hex, topic) == 5000


def test_cli_alters_and_describes_group_configs(broker):
    group = f"gcli-{uuid.uuid4().hex[:8]}"
    base = [samsa_bin(), "configs", "--bootstrap-server", broker.bootstrap]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=60)

    r = run("alter", "--entity-type", "groups", "--entity-name", group, "--add-config", f"{ST}=50000")
    assert r.returncode == 0, r.stderr
    assert f"Completed updating config for group {group}." in r.stdout
    r = run("describe", "--entity-type", "groups", "--entity-name", group)
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith(ST))
    assert "50000" in line and "GROUP_CONFIG" in line, r.stdout
    r = run("alter", "--entity-type", "groups", "--entity-name", group, "--add-config", f"{HB}=1")
    assert r.returncode != 0 and "INVALID_CONFIG" in (r.stderr + r.stdout).upper().replace(" ", "_"), r
    r = run("alter", "--entity-type", "groups", "--entity-name", group, "--delete-config", ST)
    assert r.returncode == 0, r.stderr
    r = run("describe", "--entity-type", "groups", "--entity-name", group)
    line = next(l for l in r.stdout.splitlines() if l.startswith(ST))
    assert "45000" in line and "DEFAULT_CONFIG" in line, r.stdout


@pytest.mark.timeout(300)
def test_group_configs_reach_the_coordinator_on_another_node_and_after_it_moves(cluster_factory):
    c = cluster_factory(3)
    topic = h.unique_topic("gcfg-cluster")
    c.create_topic(topic, partitions=1)
    group = f"gcfgc-{uuid.uuid4().hex[:8]}"

    def coordinator(exclude: int | None = None) -> int | None:
        """The node every serving node names as the group's coordinator."""
        named = set()
        for n in c.serving():
            try:
                err, node = find_coordinator_of(n.bootstrap, group)
            except OSError:
                return None
            if err != 0:
                return None
            named.add(node)
        if len(named) != 1:
            return None
        (node,) = named
        return node if node in c.serving_ids() and node != exclude else None

    def probe(node: int) -> int:
        return heartbeat_interval(c.nodes[node].bootstrap, group, uuid.uuid4().hex, topic)

    first = h.wait_until(coordinator, timeout=60, message=f"a coordinator for {group}")
    assert probe(first) == 5000, "the broker default before any group config"

    # Set through a node that does not coordinate the group.
    other = next(i for i in c.ids if i != first)
    alter(h.admin(c.nodes[other].bootstrap), group,
          ConfigEntry(HB, "7000", incremental_operation=AlterConfigOpType.SET))
    h.wait_until(lambda: probe(first) == 7000, timeout=30,
                 message="the coordinator on another node uses the group's heartbeat interval")
    for i in c.ids:  # every node describes it (samsa's CLI asks the node it is given)
        assert "7000" in cli_config_line(c.nodes[i].bootstrap, group, HB).split(), i

    # The coordinator dies: the group moves, and the new coordinator uses the config.
    c.kill9(first)
    second = h.wait_until(lambda: coordinator(exclude=first), timeout=60,
                          message=f"{group} coordinated by another node after node {first} died")
    assert probe(second) == 7000, "the group config after the coordinator moved"

    # Changed again through a node that is not the new coordinator: used at once.
    third = next(i for i in sorted(c.serving_ids()) if i != second)
    alter(h.admin(c.nodes[third].bootstrap), group,
          ConfigEntry(HB, "9000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry(ST, "60000", incremental_operation=AlterConfigOpType.SET))
    h.wait_until(lambda: probe(second) == 9000, timeout=30,
                 message="the new coordinator uses the changed heartbeat interval")

    # The killed node comes back with both values from the metadata log.
    c.restart(first)
    back = c.nodes[first].bootstrap
    h.wait_until(lambda: "60000" in cli_config_line(back, group, ST).split(), timeout=60,
                 message=f"node {first} describes the group config after its restart")
    assert "9000" in cli_config_line(back, group, HB).split()


def cli_config_line(bootstrap: str, group: str, name: str) -> str:
    """`samsa configs describe` of a group asked of one node: the line of ``name``
    if it is a group-level value ("" otherwise, or when the node cannot answer)."""
    r = subprocess.run([samsa_bin(), "configs", "--bootstrap-server", bootstrap, "describe",
                        "--entity-type", "groups", "--entity-name", group],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return ""
    line = next((l for l in r.stdout.splitlines() if l.startswith(name)), "")
    return line if "GROUP_CONFIG" in line else ""
