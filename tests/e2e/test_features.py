"""Features (KIP-584) through kafka-python 3's admin client (DescribeFeatures
reads ApiVersions v3+; UpdateFeatures is API 57) and `samsa features`, the
kafka-features.sh equivalent: metadata.version, kraft.version and
group.version are advertised and finalized as a Kafka 4.1 broker does, an
update survives a restart, and invalid updates are refused with Kafka's
errors."""

from __future__ import annotations

import subprocess

import pytest
from kafka import KafkaAdminClient
from kafka.admin import UpdateFeatureType
from kafka.errors import InvalidUpdateVersionError

from conftest import samsa_bin

TIMEOUT_MS = 30_000
CLI_TIMEOUT_S = 60


def kp_admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_MS)


def features(broker) -> dict:
    a = kp_admin(broker)
    try:
        return a.describe_features()
    finally:
        a.close()


def cli(broker, *args, check=True) -> subprocess.CompletedProcess:
    cmd = [samsa_bin(), "features", *args, "--bootstrap-server", broker.bootstrap]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def describe_lines(broker) -> dict[str, dict[str, str]]:
    """`samsa features describe`, parsed: feature -> {field: value}."""
    out = {}
    for line in cli(broker, "describe").stdout.splitlines():
        fields = dict(part.split(": ", 1) for part in line.split("\t"))
        out[fields["Feature"]] = fields
    return out


def test_features_are_advertised_and_finalized(broker):
    f = features(broker)
    assert f["metadata.version"]["supported"] == (7, 27)
    assert f["metadata.version"]["finalized"] == (27, 27)
    assert f["group.version"]["supported"] == (0, 1)
    assert f["group.version"]["finalized"] == (1, 1)
    assert f["kraft.version"]["supported"] == (0, 1)
    # KIP-1022: a new cluster finalizes transaction version 2 (KIP-890 part 2).
    assert f["transaction.version"]["supported"] == (0, 2)
    assert f["transaction.version"]["finalized"] == (2, 2)
    # kraft.version is at level 0 (a static quorum): supported, not finalized.
    assert "finalized" not in f["kraft.version"]
    assert f["metadata.version"]["finalized_epoch"] is not None
    assert f["metadata.version"]["finalized_epoch"] >= 0

    lines = describe_lines(broker)
    assert set(lines) == {"group.version", "kraft.version", "metadata.version", "transaction.version"}
    assert lines["metadata.version"]["SupportedMinVersion"] == "3.3-IV3"
    assert lines["metadata.version"]["SupportedMaxVersion"] == "4.1-IV1"
    assert lines["metadata.version"]["FinalizedVersionLevel"] == "4.1-IV1"
    assert lines["group.version"]["FinalizedVersionLevel"] == "1"
    assert lines["transaction.version"]["FinalizedVersionLevel"] == "2"
    assert lines["kraft.version"]["FinalizedVersionLevel"] == "0"
    assert lines["group.version"]["Epoch"] == str(f["metadata.version"]["finalized_epoch"])


def test_group_version_update_survives_a_restart(broker):
    epoch_before = features(broker)["group.version"]["finalized_epoch"]
    a = kp_admin(broker)
    try:
        # validate_only changes nothing.
        assert a.update_features({"group.version": (UpdateFeatureType.SAFE_DOWNGRADE, 0)},
                                 validate_only=True) == {"group.version": "OK"}
        assert features(broker)["group.version"]["finalized"] == (1, 1)
        assert a.update_features({"group.version": (UpdateFeatureType.SAFE_DOWNGRADE, 0)}) \
            == {"group.version": "OK"}
    finally:
        a.close()
    f = features(broker)
    assert "finalized" not in f["group.version"]
    assert f["metadata.version"]["finalized_epoch"] > epoch_before

    broker.restart()
    f = features(broker)
    assert "finalized" not in f["group.version"], "the downgrade was lost (or re-bootstrapped) on restart"
    assert describe_lines(broker)["group.version"]["FinalizedVersionLevel"] == "0"

    p = cli(broker, "upgrade", "--feature", "group.version=1", "--dry-run")
    assert p.stdout.strip() == "group.version can be upgraded to 1."
    assert "finalized" not in features(broker)["group.version"]
    p = cli(broker, "upgrade", "--feature", "group.version=1")
    assert p.stdout.strip() == "group.version was upgraded to 1."
    broker.restart()
    assert features(broker)["group.version"]["finalized"] == (1, 1)


def test_invalid_updates_are_refused_with_kafkas_errors(broker):
    a = kp_admin(broker)
    try:
        for update in ({"group.version": 5},
                       {"no.such.version": 1},
                       {"metadata.version": (UpdateFeatureType.SAFE_DOWNGRADE, 21)},
                       {"metadata.version": (UpdateFeatureType.UNSAFE_DOWNGRADE, 21)},
                       # A downgrade needs a downgrade type.
                       {"group.version": 0}):
            with pytest.raises(InvalidUpdateVersionError):
                a.update_features(update)
    finally:
        a.close()
    f = features(broker)
    assert f["metadata.version"]["finalized"] == (27, 27)
    assert f["group.version"]["finalized"] == (1, 1)

    p = cli(broker, "downgrade", "--feature", "metadata.version=3.9-IV0", check=False)
    assert p.returncode == 1
    assert p.stdout.startswith("Could not downgrade metadata.version to 3.9-IV0.")
    assert "1 out of 1 operation(s) failed." in p.stderr
    assert describe_lines(broker)["metadata.version"]["FinalizedVersionLevel"] == "4.1-IV1"


@pytest.fixture
def cluster_factory(request, tmp_path):
    from cluster import cluster_fixture
    yield from cluster_fixture(request, tmp_path)


def test_an_update_through_a_follower_reaches_every_node_and_survives_a_leader_restart(cluster_factory):
    import helpers as h
    c = cluster_factory(voters=3)
    leader = c.controller_id()
    follower = next(n for n in c.ids if n != leader)
    for n in c.ids:
        assert describe_lines(c.nodes[n])["group.version"]["FinalizedVersionLevel"] == "1"
    # Sent to a node that does not lead the quorum: it forwards the write.
    p = cli(c.nodes[follower], "downgrade", "--feature", "group.version=0")
    assert p.stdout.strip() == "group.version was downgraded to 0."
    h.wait_until(lambda: all(
        describe_lines(c.nodes[n])["group.version"]["FinalizedVersionLevel"] == "0" for n in c.ids),
        timeout=30, interval=0.2, message="every node sees group.version 0")
    c.restart(leader)
    c.wait_ready()
    for n in c.ids:
        lines = describe_lines(c.nodes[n])
        assert lines["group.version"]["FinalizedVersionLevel"] == "0", n
        assert lines["metadata.version"]["FinalizedVersionLevel"] == "4.1-IV1", n
