"""Three `samsa serve --config` processes form one cluster whose metadata is a
Raft quorum: every node sees every broker and topic, clients route by
Metadata, a crashed node rejoins from its directory, and a new controller is
elected when the leader is killed. (Data replication is a later step: topics
here have replication factor 1.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import helpers as h
import kafka_wire as kw
from conftest import Broker, free_port, samsa_bin


class ClusterNode(Broker):
    """One `samsa serve --config server.properties` process (broker+controller)."""

    def __init__(self, binary: str, workdir: Path, node_id: int, port: int,
                 controller_port: int, voters: str):
        super().__init__(binary, workdir, [], name=f"node{node_id}")
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.config_path = workdir / "server.properties"
        self.config_path.write_text("\n".join([
            f"node.id={node_id}",
            "process.roles=broker,controller",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            f"controller.quorum.voters={voters}",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            "",
        ]))

    def command(self) -> list[str]:
        return [self.binary, "serve", "--config", str(self.config_path)]


def metadata(node: ClusterNode) -> kw.MetadataV1:
    """This node's own Metadata answer (all topics: never auto-creates)."""
    s = kw.connect(node.bootstrap)
    try:
        s.sendall(kw.metadata_v1_request(7, None))
        frame = kw.read_frame(s)
        assert frame is not None, f"{node.name} closed the connection"
        return kw.parse_metadata_v1(frame)
    finally:
        s.close()


def try_metadata(node: ClusterNode) -> kw.MetadataV1 | None:
    try:
        return metadata(node)
    except (OSError, ValueError, TimeoutError):
        return None


@pytest.fixture
def cluster(request, tmp_path):
    binary = samsa_bin()
    ids = [1, 2, 3]
    ports = {i: free_port() for i in ids}
    cports = {i: free_port() for i in ids}
    voters = ",".join(f"{i}@127.0.0.1:{cports[i]}" for i in ids)
    nodes = [ClusterNode(binary, tmp_path / f"node{i}", i, ports[i], cports[i], voters) for i in ids]
    request.node._samsa_brokers = nodes
    for n in nodes:
        n.start()
    yield {n.node_id: n for n in nodes}
    for n in nodes:
        if n.alive():
            n.stop()
    complaints = [c for c in (n.teardown() for n in nodes) if c]
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


def wait_cluster_view(nodes, brokers: set[int], topics: dict[str, int] | None = None,
                      exclude_controller: set[int] = frozenset(), timeout: float = 20.0):
    """Wait until every node in ``nodes`` reports ``brokers``, a controller
    (not in ``exclude_controller``) and ``topics`` with all leaders set."""
    def ok():
        views = {}
        for n in nodes:
            md = try_metadata(n)
            if md is None or set(md.brokers) != brokers:
                return None
            if md.controller_id < 0 or md.controller_id in exclude_controller:
                return None
            for name, count in (topics or {}).items():
                t = md.topics.get(name)
                if t is None or t[0] != 0 or len(t[1]) != count:
                    return None
                if any(err != 0 or leader < 0 for err, leader in t[1].values()):
                    return None
            views[n.node_id] = md
        return views
    return h.wait_until(ok, timeout=timeout, interval=0.1,
                        message=f"cluster view brokers={brokers} topics={topics}")


@pytest.mark.timeout(120)
def test_three_nodes_share_metadata_and_survive_crashes(cluster):
    nodes = cluster
    everyone = set(nodes)

    # Every node lists the three brokers and the same controller.
    views = wait_cluster_view(nodes.values(), everyone)
    assert len({md.controller_id for md in views.values()}) == 1, views
    md = h.admin(nodes[1].bootstrap).list_topics(timeout=10)
    assert set(md.brokers) == everyone
    assert md.controller_id in everyone

    # A 6-partition topic created through node 1 shows up on every node,
    # with its leaders spread over the three brokers.
    topic = h.unique_topic("cluster")
    a1 = h.admin(nodes[1].bootstrap)
    fs = a1.create_topics([h.NewTopic(topic, num_partitions=6, replication_factor=1)],
                          operation_timeout=10)
    fs[topic].result(timeout=30)
    views = wait_cluster_view(nodes.values(), everyone, {topic: 6})
    for md in views.values():
        leaders = {leader for _, leader in md.topics[topic][1].values()}
        assert leaders == everyone, md.topics[topic]
    assert len({tuple(sorted(md.topics[topic][1].items())) for md in views.values()}) == 1

    # Keyed records produced through node 2 all come back.
    items = [dict(key=f"key-{i % 17}".encode(), value=f"value-{i}".encode()) for i in range(300)]
    log = h.produce_and_flush(h.producer(nodes[2].bootstrap, acks="all"), items, topic)
    assert not log.errors, log.errors[:3]
    assert len({d.partition for d in log.ok}) > 1
    got = h.consume_partitions(nodes[2].bootstrap, topic, range(6))
    values = sorted(r.value for rs in got.values() for r in rs)
    assert values == sorted(i["value"] for i in items)

    # kill -9 a node that is not the leader; it rejoins from its directory.
    leader = views[1].controller_id
    victim = next(i for i in sorted(nodes) if i != leader)
    nodes[victim].kill()
    nodes[victim].start()
    wait_cluster_view(nodes.values(), everyone, {topic: 6})
    got = h.consume_partitions(nodes[1].bootstrap, topic, range(6))
    assert sum(len(rs) for rs in got.values()) == len(items)

    # kill -9 the Raft leader: a new controller is elected, and a topic
    # created afterwards is visible on every live node.
    leader = wait_cluster_view(nodes.values(), everyone)[1].controller_id
    t0 = time.monotonic()
    nodes[leader].kill()
    live = [n for i, n in nodes.items() if i != leader]
    wait_cluster_view(live, everyone, exclude_controller={leader}, timeout=30)
    failover = time.monotonic() - t0
    print(f"controller failover after kill -9 of node {leader}: {failover:.2f}s")
    after = h.unique_topic("after-failover")
    a = h.admin(live[0].bootstrap)
    h.wait_until(lambda: create_ok(a, after), timeout=30, message="topic creation after failover")
    views = wait_cluster_view(live, everyone, {after: 1})
    assert all(md.controller_id != leader for md in views.values())


def create_ok(a, name: str) -> bool:
    fs = a.create_topics([h.NewTopic(name, num_partitions=1, replication_factor=1)],
                         operation_timeout=10)
    try:
        fs[name].result(timeout=30)
        return True
    except Exception as e:  # retriable while the new leader settles
        if "TOPIC_ALREADY_EXISTS" in str(e):
            return True
        print(f"create {name}: {e}")
        return False
