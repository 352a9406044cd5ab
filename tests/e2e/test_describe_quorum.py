"""DescribeQuorum (API 55) on a replicated cluster, through kafka-python 3's
admin client and protocol classes, sent to each node in turn.

Only the quorum leader knows its followers' progress; the other nodes forward
the request to it (as Kafka's brokers forward it to the active controller),
so every node gives the leader's answer."""

from __future__ import annotations

import subprocess
import time

import pytest
from kafka import KafkaAdminClient
from kafka.protocol.admin import DescribeQuorumRequest

import helpers as h
from cluster import cluster_fixture, log
from conftest import samsa_bin

@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def describe_on(admin: KafkaAdminClient, node_id: int):
    """The DescribeQuorum response of node ``node_id``."""
    topic = DescribeQuorumRequest.TopicData
    request = DescribeQuorumRequest(topics=[topic(
        topic_name="__cluster_metadata",
        partitions=[topic.PartitionData(partition_index=0)])])

    async def send():
        return await admin._manager.send(request, node_id=node_id)
    return admin._manager.run(send)


def quorum_views(admin: KafkaAdminClient, node_ids) -> dict[int, object]:
    """node id -> the partition entry it answered."""
    out = {}
    for n in node_ids:
        r = describe_on(admin, n)
        assert r.error_code == 0
        [topic] = r.topics
        assert topic.topic_name == "__cluster_metadata"
        [p] = topic.partitions
        out[n] = (p, r)
    return out


def leader_view(admin, node_ids):
    """(leader id, its partition entry, its response) once every node in
    ``node_ids`` answers with the same leader and epoch."""
    def ok():
        views = quorum_views(admin, node_ids)
        if any(p.error_code != 0 for p, _ in views.values()):
            return None
        if len({(p.leader_id, p.leader_epoch) for p, _ in views.values()}) != 1:
            return None
        p, r = views[node_ids[0]]
        live = [v for v in p.current_voters if v.replica_id in node_ids]
        if len(p.current_voters) == 3 and all(v.log_end_offset > 0 for v in live):
            return p.leader_id, p, r
        return None
    return h.wait_until(ok, timeout=30, interval=0.2, message="every node answering the leader's view")


def cli(c, *args: str) -> str:
    """`samsa metadata-quorum ARGS` against the cluster; its stdout."""
    out = subprocess.run([samsa_bin(), "metadata-quorum", "--bootstrap-server", c.bootstrap, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_describe_quorum_follows_the_leader_after_a_kill(cluster_factory):
    c = cluster_factory(voters=3, brokers=1)
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=20_000)
    try:
        leader, p, r = leader_view(admin, c.ids)
        log(f"quorum leader {leader} epoch {p.leader_epoch} hw {p.high_watermark}")
        assert p.leader_id == leader
        assert sorted(v.replica_id for v in p.current_voters) == [1, 2, 3]
        # The broker-only node heartbeats the leader: an observer.
        assert [o.replica_id for o in p.observers] == [4]
        now_ms = time.time() * 1000
        me = next(v for v in p.current_voters if v.replica_id == leader)
        assert me.log_end_offset >= p.high_watermark > 0
        assert abs(me.last_fetch_timestamp - now_ms) < 60_000
        # v2: the voters and their CONTROLLER listeners.
        assert sorted(n.node_id for n in r.nodes) == [1, 2, 3]
        assert all(n.listeners[0].name == "CONTROLLER" for n in r.nodes)
        # kafka-python's own describe_metadata_quorum reaches any node.
        d = admin.describe_metadata_quorum()
        part = d["topics"][0]["partitions"][0]
        assert part["error"] is None and part["leader_id"] == leader
        epoch = p.leader_epoch
        # kafka-metadata-quorum.sh's equivalent.
        status = cli(c, "describe", "--status")
        assert f"LeaderId:               {leader}\n" in status
        assert f"LeaderEpoch:            {epoch}\n" in status
        assert '"CONTROLLER://127.0.0.1:' in status
        assert 'CurrentObservers:       [{"id":4}]' in status
        table = cli(c, "describe", "--replication").splitlines()
        assert table[0].split() == ["NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp",
                                    "LastCaughtUpTimestamp", "Status"]
        assert [(row.split()[0], row.split()[-1]) for row in table[1:]] == \
            [(str(leader), "Leader")] + [(str(n), "Follower") for n in (1, 2, 3) if n != leader] + \
            [("4", "Observer")]
    finally:
        admin.close()

    killed_ms = time.time() * 1000
    c.kill9(leader)
    survivors = [n for n in c.ids if n != leader]
    c.wait_ready(brokers=set(survivors))
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=20_000)
    try:
        new_leader, p, _ = leader_view(admin, survivors)
        log(f"new quorum leader {new_leader} epoch {p.leader_epoch}")
        assert new_leader != leader
        assert p.leader_epoch > epoch
        dead = next(v for v in p.current_voters if v.replica_id == leader)
        assert f"LeaderId:               {new_leader}\n" in cli(c, "describe", "--status")
        # The killed voter was last heard from before the kill; the live ones since.
        assert dead.last_fetch_timestamp <= killed_ms
        assert dead.last_caught_up_timestamp <= killed_ms
        live = [v for v in p.current_voters if v.replica_id != leader]
        h.wait_until(lambda: all(
            v.last_fetch_timestamp > killed_ms
            for v in leader_view(admin, survivors)[1].current_voters if v.replica_id != leader),
            message="the live voters heard from after the kill")
        assert len(live) == 2
    finally:
        admin.close()
