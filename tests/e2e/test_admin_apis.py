"""Issue 14's admin APIs and fields, driven by real clients.

DescribeTopicPartitions (KIP-966) and ListConfigResources (KIP-1142) through
kafka-python 3's KafkaAdminClient (its own protocol classes); authorized
operations through confluent-kafka's AdminClient (librdkafka); nullable
strings that Kafka leaves null on success through kafka-python's raw
CreateTopics response.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import AclOperation
import pytest
from kafka import KafkaAdminClient

import helpers as h

# Creating 2,000 partitions takes a debug build on a busy machine over 20 s.
TIMEOUT_MS = 90_000

TOPIC_OPS = {
    AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE,
    AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
}
# Kafka 4.x's AclEntry.supportedOperations(GROUP).
GROUP_OPS = {
    AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE,
    AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
}
CLUSTER_OPS = {
    AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
    AclOperation.DESCRIBE,
}


@pytest.fixture
def kp_admin(broker):
    with_timeout = KafkaAdminClient(bootstrap_servers=broker.bootstrap,
                                    request_timeout_ms=TIMEOUT_MS)
    yield with_timeout
    with_timeout.close()


def test_describe_topic_partitions_pages_over_2000_partitions(broker, kp_admin):
    big = h.unique_topic("dtp-big")
    small = big + "-z"  # sorts after `big`
    kp_admin.create_topics({big: {"num_partitions": 2000, "replication_factor": 1},
                            small: {"num_partitions": 3, "replication_factor": 1}},
                           timeout_ms=TIMEOUT_MS)

    # Pages of 700: the cursor walks the big topic, then moves on to the small one.
    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        r = kp_admin.describe_topic_partitions([small, big], response_partition_limit=700,
                                               cursor=cursor)
        pages += 1
        for t in r["topics"]:
            assert t["error_code"] == 0, t
            assert t["topic_authorized_operations"] == 3576
            seen.extend((t["name"], p["partition_index"]) for p in t["partitions"])
            for p in t["partitions"]:
                assert p["leader_id"] == 1 and p["isr_nodes"] == [1]
        cursor = r["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == [(big, i) for i in range(2000)] + [(small, i) for i in range(3)]

    # A larger limit is capped by max.request.partition.size.limit (2000):
    # the big topic fills the page, and the cursor names the next topic.
    r = kp_admin.describe_topic_partitions([big, small], response_partition_limit=100_000)
    assert [len(t["partitions"]) for t in r["topics"]] == [2000]
    assert r["next_cursor"] == {"topic_name": small, "partition_index": 0}

    # Unknown topics are answered UNKNOWN_TOPIC_OR_PARTITION (3).
    r = kp_admin.describe_topic_partitions([h.unique_topic("dtp-missing")])
    assert [t["error_code"] for t in r["topics"]] == [3]


def test_list_config_resources_by_type(broker, kp_admin):
    t = h.unique_topic("lcr")
    kp_admin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}},
                           timeout_ms=TIMEOUT_MS)
    group = h.unique_topic("lcr-group")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(t, 0, 0)], asynchronous=False)
    finally:
        c.close()

    everything = kp_admin.list_config_resources()
    assert t in everything["topic"]
    assert everything["broker"] == ["1"]
    assert group in everything["group"]
    assert "client_metrics" not in everything
    only_topics = kp_admin.list_config_resources(["TOPIC"])
    assert set(only_topics) == {"topic"} and t in only_topics["topic"]


def test_authorized_operations_with_confluent_kafka(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("authz")
    h.create_topic(a, t, 1)
    topic = a.describe_topics(TopicCollection([t]),
                              include_authorized_operations=True)[t].result(30)
    assert set(topic.authorized_operations) == TOPIC_OPS
    cluster = a.describe_cluster(include_authorized_operations=True).result(30)
    assert set(cluster.authorized_operations) == CLUSTER_OPS
    # Not asked for: none reported.
    topic = a.describe_topics(TopicCollection([t]))[t].result(30)
    assert not topic.authorized_operations

    # A classic group (offsets committed): DescribeGroups v3+ reports the group's ops.
    group = h.unique_topic("authz-group")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(t, 0, 0)], asynchronous=False)
    finally:
        c.close()
    described = a.describe_consumer_groups([group],
                                           include_authorized_operations=True)[group].result(30)
    assert set(described.authorized_operations) == GROUP_OPS


def test_consumer_group_describe_reports_authorized_operations(broker):
    """A KIP-848 group is described with ConsumerGroupDescribe (librdkafka
    reports it as a CONSUMER group), which carries the group's operations."""
    from confluent_kafka import ConsumerGroupType

    a = h.admin(broker.bootstrap)
    t = h.unique_topic("authz-848")
    h.create_topic(a, t, 1)
    group = h.unique_topic("authz-848-group")
    c = h.consumer(broker.bootstrap, **{"group.id": group, "group.protocol": "consumer"})
    try:
        c.subscribe([t])
        h.wait_until(lambda: (c.poll(0.2), c.assignment())[1] != [], message="consumer assigned")
        described = a.describe_consumer_groups([group],
                                               include_authorized_operations=True)[group].result(30)
        assert described.type == ConsumerGroupType.CONSUMER, described.type
        assert set(described.authorized_operations) == GROUP_OPS
        plain = a.describe_consumer_groups([group])[group].result(30)
        assert not plain.authorized_operations, "not asked for: none reported"
    finally:
        c.close()


def test_create_topics_error_message_is_null_on_success(broker, kp_admin):
    t = h.unique_topic("nullmsg")
    r = kp_admin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}},
                               timeout_ms=TIMEOUT_MS)
    topics = r["topics"] if isinstance(r, dict) else r.topics
    entry = topics[0]
    message = entry["error_message"] if isinstance(entry, dict) else entry.error_message
    assert message is None
