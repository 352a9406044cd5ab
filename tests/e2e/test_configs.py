"""Topic and broker configs altered at run time, through confluent-kafka's
AdminClient (IncrementalAlterConfigs and the legacy AlterConfigs)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource)

import helpers as h


def describe(a, rtype, name) -> dict:
    res = ConfigResource(rtype, name)
    return a.describe_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)


def incremental(a, rtype, name, *entries):
    res = ConfigResource(rtype, name, incremental_configs=list(entries))
    return a.incremental_alter_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)


def test_incremental_alter_topic_config_takes_effect_without_restart(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("cfg")
    h.create_topic(a, t)
    p = h.producer(broker.bootstrap)
    value = b"x" * 3000
    log = h.produce_and_flush(p, [{"value": value}], t)
    assert not log.errors, log.errors

    incremental(a, "topic", t,
                ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("retention.ms", "604800000", incremental_operation=AlterConfigOpType.SET))
    cfg = describe(a, "topic", t)
    assert cfg["max.message.bytes"].value == "1000"
    assert cfg["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].value == "604800000"
    # The new limit applies at once: the same record is now refused.
    log = h.produce_and_flush(h.producer(broker.bootstrap), [{"value": value}], t)
    assert log.errors and "MSG_SIZE_TOO_LARGE" in str(log.errors[0]), log.errors

    incremental(a, "topic", t,
                ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE))
    cfg = describe(a, "topic", t)
    assert cfg["max.message.bytes"].value == "1048588"
    assert cfg["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    log = h.produce_and_flush(h.producer(broker.bootstrap), [{"value": value}], t)
    assert not log.errors, log.errors


def test_invalid_config_is_refused_with_invalid_config(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("cfg")
    h.create_topic(a, t)
    for name, value in [("retention.ms", "soon"), ("no.such.config", "1"), ("cleanup.policy", "shred")]:
        with pytest.raises(KafkaException) as e:
            incremental(a, "topic", t, ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
        assert e.value.args[0].name() == "INVALID_CONFIG", e.value
    assert describe(a, "topic", t)["retention.ms"].value == "604800000", "nothing half-applied"


def test_append_and_subtract_on_list_configs(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("cfg")
    h.create_topic(a, t)
    incremental(a, "topic", t,
                ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert describe(a, "topic", t)["cleanup.policy"].value == "delete,compact"
    incremental(a, "topic", t,
                ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert describe(a, "topic", t)["cleanup.policy"].value == "compact"
    # Subtracting the last element leaves the empty list, which Kafka 4.x
    # accepts (no compaction and no retention deletion).
    incremental(a, "topic", t,
                ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT))
    cfg = describe(a, "topic", t)["cleanup.policy"]
    assert cfg.value == "" and cfg.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, cfg
    incremental(a, "topic", t,
                ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND))
    assert describe(a, "topic", t)["cleanup.policy"].value == "delete"
    # An empty element inside a list is still refused, as in Kafka.
    with pytest.raises(KafkaException) as e:
        incremental(a, "topic", t,
                    ConfigEntry("cleanup.policy", "delete,,compact", incremental_operation=AlterConfigOpType.SET))
    assert e.value.args[0].name() == "INVALID_CONFIG", e.value


def test_legacy_alter_configs_replaces_the_whole_set(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("cfg")
    h.create_topic(a, t, config={"retention.ms": "1000", "segment.bytes": "2097152"})
    res = ConfigResource("topic", t, set_config={"retention.ms": "5000"})
    a.alter_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)
    cfg = describe(a, "topic", t)
    assert cfg["retention.ms"].value == "5000"
    assert cfg["segment.bytes"].value == "1073741824", "unlisted keys revert to defaults"


def test_dynamic_broker_default_feeds_topic_defaults(broker):
    a = h.admin(broker.bootstrap)
    t = h.unique_topic("cfg")
    h.create_topic(a, t)
    incremental(a, "broker", "1",
                ConfigEntry("log.retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET))
    b = describe(a, "broker", "1")
    assert b["log.retention.ms"].value == "3600000"
    assert b["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    topic = describe(a, "topic", t)["retention.ms"]
    assert topic.value == "3600000"
    with pytest.raises(KafkaException) as e:
        incremental(a, "broker", "1",
                    ConfigEntry("listeners", "PLAINTEXT://0.0.0.0:1", incremental_operation=AlterConfigOpType.SET))
    assert e.value.args[0].name() == "INVALID_CONFIG"
