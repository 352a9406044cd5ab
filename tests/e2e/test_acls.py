"""ACLs with the standard authorizer, driven by kafka-python's admin client
and producer over plaintext (every client is User:ANONYMOUS here; mTLS and
SASL principals are covered by the Rust tests and later e2e)."""

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, NewTopic, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import TopicAuthorizationFailedError

AUTHORIZER = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Not every API is authorized yet: samsa refuses to start an authorizer
# unless this is set (see test_startup_safety.py).
UNCHECKED_OK = "samsa.authorizer.unchecked.apis.allow=true"


def deny_write(topic: str) -> ACL:
    return ACL(principal="User:ANONYMOUS", host="*", operation=ACLOperation.WRITE,
               permission_type=ACLPermissionType.DENY,
               resource_pattern=ResourcePattern(ResourceType.TOPIC, topic,
                                                ACLResourcePatternType.LITERAL))


def anonymous_acls(admin: KafkaAdminClient) -> list:
    acls, error = admin.describe_acls(ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                               ACLResourcePatternType.ANY)))
    assert error.errno == 0, error
    return acls


def test_a_deny_acl_stops_writes_and_survives_a_restart(broker_factory):
    # No ACL on a resource allows everyone, so the anonymous client may
    # create ACLs (Cluster Alter) until one names the cluster.
    broker = broker_factory(AUTHORIZER, UNCHECKED_OK, "allow.everyone.if.no.acl.found=true")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("orders", 1, 1), NewTopic("audit", 1, 1)])
    result = admin.create_acls([deny_write("orders")])
    assert result["failed"] == [], result
    assert len(anonymous_acls(admin)) == 1
    admin.close()

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0,
                             request_timeout_ms=10000, max_block_ms=10000)
    producer.send("audit", b"fine").get(timeout=10)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send("orders", b"denied").get(timeout=10)
    producer.close()

    broker.restart()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    acls = anonymous_acls(admin)
    assert [(a.resource_pattern.resource_name, a.operation, a.permission_type) for a in acls] \
        == [("orders", ACLOperation.WRITE, ACLPermissionType.DENY)]
    admin.delete_acls([ACLFilter(
        principal="User:ANONYMOUS", host="*", operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders",
                                               ACLResourcePatternType.LITERAL))])
    assert anonymous_acls(admin) == []
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0,
                             request_timeout_ms=10000, max_block_ms=10000)
    producer.send("orders", b"allowed again").get(timeout=10)
    producer.close()
