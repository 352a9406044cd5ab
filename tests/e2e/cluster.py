"""A replicated samsa cluster for end-to-end tests, plus a produce/consume
workload and a checker of what the clients were told against what the log holds.

``Cluster`` runs N ``samsa serve --config server.properties`` processes (3 or 5;
voters are broker+controller, the rest broker-only) with Kafka KRaft config names,
``replication.factor`` 3 and ``min.insync.replicas`` 2, and short failure-detection
timeouts. Each node can have a ``FaultProxy`` in front of its REPLICATION
listener (the endpoint followers fetch from), so a test can cut replication
traffic to a leader while clients and the controller quorum still reach it.

Node control: ``kill9``, ``sigterm`` (controlled shutdown, timed), ``sigstop`` /
``sigcont``, ``restart``. Cluster views come from raw Metadata v1 requests sent to
one specific node, so a test can see what each node believes (leader, replicas,
ISR per partition, brokers, controller).

``Workload`` produces unique values (``f"{run}-{seq}"``) with acks=all through
confluent-kafka and records every delivery report; ``GroupReader`` consumes the
topic in a consumer group; ``check_log`` drains the topic from offset 0 and checks
every acknowledged record against it.

Fixture body: ``cluster_fixture`` (a test module wraps it in a ``cluster_factory`` fixture).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import helpers as h
import kafka_wire as kw
from conftest import _PORTS_HANDED_OUT, Broker, BrokerError, samsa_bin
from faultproxy import FaultProxy

# Kafka KRaft names; what every node of a test cluster runs with.
BROKER_SESSION_TIMEOUT_MS = 1000
CLUSTER_DEFAULTS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "5",
    "unclean.leader.election.enable": "false",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "1",
    "broker.session.timeout.ms": str(BROKER_SESSION_TIMEOUT_MS),
    "broker.heartbeat.interval.ms": "200",
    "replica.lag.time.max.ms": "2000",
    "replica.fetch.wait.max.ms": "200",
    "controller.quorum.election.timeout.ms": "500",
}

SIGTERM_DEADLINE_S = 30.0
# Delivery reports are served by the producer thread's poll(), a few ms after the
# broker answered. Acknowledgements served later than this after a leader died
# were certainly answered by another broker.
POST_KILL_GUARD_S = 0.2
METADATA_TIMEOUT_S = 2.0
ERR_NOT_ENOUGH_REPLICAS = 19
ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20


_BACKGROUND: list = []  # Workloads and GroupReaders still running (stopped at teardown)


def log(msg: str) -> None:
    """Progress line with a wall-clock stamp (shown by pytest on failure, or with -s)."""
    print(f"[{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}] {msg}", flush=True)


# =====================================================================================
# Metadata v1 with replicas and ISR, FindCoordinator v0 — raw requests to one node
# =====================================================================================

@dataclass
class PartitionState:
    error: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class View:
    """What one node answered to Metadata (all topics)."""
    node_id: int
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    topics: dict[str, tuple[int, dict[int, PartitionState]]]

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        t = self.topics.get(topic)
        if t is None or t[0] != 0:
            return None
        return t[1].get(partition)


def parse_metadata_v1_full(resp: bytes, node_id: int) -> View:
    r = kw.Reader(resp)
    r.i32()  # correlation id
    brokers = {}
    for _ in range(r.array_len()):
        node, host, port = r.i32(), r.string(), r.i32()
        r.string()  # rack
        brokers[node] = (host, port)
    controller = r.i32()
    topics = {}
    for _ in range(r.array_len()):
        err, name = r.i16(), r.string()
        r.i8()  # is_internal
        parts = {}
        for _ in range(r.array_len()):
            perr, idx, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.array_len())]
            isr = [r.i32() for _ in range(r.array_len())]
            parts[idx] = PartitionState(perr, leader, replicas, isr)
        topics[name] = (err, parts)
    return View(node_id, brokers, controller, topics)


def metadata_of(bootstrap: str, node_id: int, timeout: float = METADATA_TIMEOUT_S) -> View:
    s = kw.connect(bootstrap, timeout=timeout)
    try:
        s.sendall(kw.metadata_v1_request(7, None))
        frame = kw.read_frame(s, timeout=timeout)
        if frame is None:
            raise OSError(f"node {node_id} closed the connection")
        return parse_metadata_v1_full(frame, node_id)
    finally:
        s.close()


def find_coordinator_of(bootstrap: str, group: str, timeout: float = METADATA_TIMEOUT_S,
                        key_type: int = 0) -> tuple[int, int]:
    """FindCoordinator for ``group`` sent to one node: (error code, coordinator node id).
    v0 for a group; v1 with ``key_type`` 1 for a transactional id."""
    if key_type == 0:
        req = kw.frame(kw.request_header_v1(10, 0, 11) + kw.string(group))
    else:
        req = kw.frame(kw.request_header_v1(10, 1, 13) + kw.string(group) + kw.i8(key_type))
    s = kw.connect(bootstrap, timeout=timeout)
    try:
        s.sendall(req)
        frame = kw.read_frame(s, timeout=timeout)
        if frame is None:
            raise OSError("closed the connection")
        r = kw.Reader(frame)
        r.i32()  # correlation id
        if key_type == 0:
            return r.i16(), r.i32()
        r.i32()  # throttle_time_ms
        err = r.i16()
        r.string()  # error_message (nullable)
        return err, r.i32()
    finally:
        s.close()


# =====================================================================================
# Nodes and the cluster
# =====================================================================================

class ClusterNode(Broker):
    """One `samsa serve --config server.properties` process of a replicated cluster."""

    def __init__(self, binary: str, workdir: Path, node_id: int, *, voter: bool, port: int,
                 replication_port: int, controller_port: int | None, voters: str,
                 advertised_replication_port: int, overrides: dict[str, str]):
        super().__init__(binary, workdir, [], name=f"node{node_id}")
        self.node_id = node_id
        self.voter = voter
        self.port = port
        self.replication_port = replication_port
        self.controller_port = controller_port
        self.advertised_replication_port = advertised_replication_port
        self.stopped = False  # SIGSTOPped
        self.config_path = workdir / "server.properties"
        listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"REPLICATION://127.0.0.1:{replication_port}"]
        if voter:
            listeners.append(f"CONTROLLER://127.0.0.1:{controller_port}")
        props = {
            "node.id": str(node_id),
            "process.roles": "broker,controller" if voter else "broker",
            "listeners": ",".join(listeners),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},"
                                    f"REPLICATION://127.0.0.1:{advertised_replication_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "REPLICATION",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": voters,
            "log.dirs": str(self.data_dir),
            "http.listeners": f"http://127.0.0.1:{self.http_port}",
        }
        props.update(CLUSTER_DEFAULTS)
        props.update(overrides)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def command(self) -> list[str]:
        return [self.binary, "serve", "--config", str(self.config_path)]

    # Broker.start() launches and waits; a cluster launches every node first so
    # that a node which waits for its quorum before listening cannot deadlock the start.
    def launch(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            f.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         cwd=self.workdir, start_new_session=True)
        self._expected_exit = False
        self.stopped = False

    def wait_listening(self) -> None:
        self._wait_ready()

    def start(self) -> "ClusterNode":
        self.launch()
        self._wait_ready()
        return self

    def serving(self) -> bool:
        """Running and not SIGSTOPped (so it can answer requests)."""
        return self.alive() and not self.stopped

    def kill9(self) -> None:
        self.kill()
        self.stopped = False

    def sigterm(self, deadline: float = SIGTERM_DEADLINE_S) -> float:
        """Controlled shutdown: SIGTERM, wait for exit (≤ ``deadline``), require status 0.
        Returns the seconds from the signal to the exit."""
        self.assert_alive()
        self._expected_exit = True
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self._kill_group()
            raise BrokerError(f"{self.name} did not exit within {deadline:.0f}s of SIGTERM "
                              f"(a controlled shutdown must not hang)\n{self.log_tail()}")
        took = time.monotonic() - t0
        if code != 0:
            raise BrokerError(f"{self.name} exited with code {code} after SIGTERM (want 0)\n{self.log_tail()}")
        return took

    def sigstop(self) -> None:
        self.assert_alive()
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self) -> None:
        self.assert_alive()
        os.killpg(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def panics(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [ln for ln in text.splitlines() if "panicked at" in ln]


def distinct_ports(n: int) -> list[int]:
    """``n`` different free 127.0.0.1 ports (all held open until all are
    chosen), none handed out before in this run (see ``conftest.free_port``)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in _PORTS_HANDED_OUT:
                ports.append(port)
        _PORTS_HANDED_OUT.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


class Cluster:
    """``voters`` broker+controller nodes (ids 1..voters) and ``brokers`` broker-only
    nodes (ids voters+1..). ``proxies=True`` puts a FaultProxy in front of every
    node's REPLICATION listener."""

    def __init__(self, binary: str, base: Path, *, voters: int = 3, brokers: int = 0,
                 proxies: bool = False, overrides: dict[str, str] | None = None):
        ids = list(range(1, voters + brokers + 1))
        free = distinct_ports(2 * len(ids) + voters)
        ports = {i: free.pop() for i in ids}
        rports = {i: free.pop() for i in ids}
        cports = {i: free.pop() for i in ids[:voters]}
        self.voter_ids = set(ids[:voters])
        self.proxies: dict[int, FaultProxy] = {}
        if proxies:
            for i in ids:
                self.proxies[i] = FaultProxy("127.0.0.1", rports[i], name=f"proxy{i}")
        voters_s = ",".join(f"{i}@127.0.0.1:{cports[i]}" for i in ids[:voters])
        self.nodes: dict[int, ClusterNode] = {}
        for i in ids:
            adv = self.proxies[i].port if proxies else rports[i]
            self.nodes[i] = ClusterNode(binary, base / f"node{i}", i, voter=i in self.voter_ids,
                                        port=ports[i], replication_port=rports[i],
                                        controller_port=cports.get(i), voters=voters_s,
                                        advertised_replication_port=adv, overrides=overrides or {})

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> "Cluster":
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_listening()
        self.wait_ready(timeout=timeout)
        return self

    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    def serving(self) -> list[ClusterNode]:
        return [n for _, n in sorted(self.nodes.items()) if n.serving()]

    def serving_ids(self) -> set[int]:
        return {n.node_id for n in self.serving()}

    @property
    def bootstrap(self) -> str:
        """Every node's client address (clients then survive any single node being down)."""
        return ",".join(n.bootstrap for _, n in sorted(self.nodes.items()))

    def kill9(self, node_id: int) -> None:
        log(f"kill -9 node {node_id}")
        self.nodes[node_id].kill9()

    def sigterm(self, node_id: int) -> float:
        log(f"SIGTERM node {node_id}")
        took = self.nodes[node_id].sigterm()
        log(f"node {node_id} exited {took:.2f}s after SIGTERM")
        return took

    def sigstop(self, node_id: int) -> None:
        log(f"SIGSTOP node {node_id}")
        self.nodes[node_id].sigstop()

    def sigcont(self, node_id: int) -> None:
        log(f"SIGCONT node {node_id}")
        self.nodes[node_id].sigcont()

    def restart(self, node_id: int, wait: bool = True) -> None:
        """Start a node that was killed or shut down (same ports and directory).
        ``wait=False`` returns once the process is launched (for a node that may
        need a quorum that is not there yet); ``wait_listening`` then waits."""
        n = self.nodes[node_id]
        if n.alive():
            n.kill9()
        log(f"start node {node_id}")
        n.launch()
        if wait:
            n.wait_listening()

    def wait_listening(self) -> None:
        for n in self.serving():
            n.wait_listening()

    def cut(self, node_id: int) -> None:
        log(f"cut replication traffic to node {node_id}")
        self.proxies[node_id].cut()

    def heal(self, node_id: int | None = None) -> None:
        for i, p in self.proxies.items():
            if node_id is None or i == node_id:
                if p.is_cut:
                    log(f"heal replication traffic to node {i}")
                p.heal()

    def teardown(self) -> list[str]:
        """Kill every process (a controlled shutdown of the whole cluster is not
        what the tests measure; SIGTERM is checked where a test asks for it) and
        report nodes that died on their own or logged a panic."""
        complaints = []
        for n in self.nodes.values():
            c = n.teardown()
            if c:
                complaints.append(f"{n.name}: {c}")
        for n in self.nodes.values():
            p = n.panics()
            if p:
                complaints.append(f"{n.name} panicked: {p[:3]}")
        for p in self.proxies.values():
            p.close()
        return complaints

    # ------------------------------------------------------------------ views

    def view(self, node_id: int) -> View | None:
        n = self.nodes[node_id]
        if not n.serving():
            return None
        try:
            return metadata_of(n.bootstrap, node_id)
        except (OSError, ValueError, TimeoutError):
            return None

    def views(self) -> dict[int, View]:
        """Metadata from every serving node that answers."""
        out = {}
        for n in self.serving():
            v = self.view(n.node_id)
            if v is not None:
                out[n.node_id] = v
        return out

    def wait_ready(self, timeout: float = 60.0, brokers: set[int] | None = None) -> dict[int, View]:
        """Every serving node lists every serving broker (or ``brokers``) and a controller
        that is itself serving."""
        def ok():
            want = brokers if brokers is not None else self.serving_ids()
            views = self.views()
            if set(views) != self.serving_ids():
                return None
            for v in views.values():
                if not want <= set(v.brokers):
                    return None
                if v.controller_id < 0:
                    return None
            return views
        return h.wait_until(ok, timeout=timeout, interval=0.1,
                            message=f"every serving node {sorted(self.serving_ids())} to list all serving "
                                    f"brokers and a controller")

    def controller_id(self) -> int:
        """The controller every serving node agrees on (samsa reports the Raft
        leader as Metadata's controller_id)."""
        def ok():
            ids = {v.controller_id for v in self.views().values()}
            if len(ids) == 1 and (c := ids.pop()) in self.serving_ids():
                return c
            return None
        return h.wait_until(ok, timeout=30, interval=0.1, message="one agreed, serving controller")

    def leader_of(self, topic: str, partition: int, timeout: float = 30.0) -> int:
        """The serving leader of ``topic``/``partition`` that every serving node agrees on."""
        def ok():
            views = self.views()
            if not views:
                return None
            leaders = set()
            for v in views.values():
                ps = v.partition(topic, partition)
                if ps is None:
                    return None
                leaders.add(ps.leader)
            if len(leaders) == 1 and (l := leaders.pop()) in self.serving_ids():
                return l
            return None
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.05,
                                message=f"an agreed serving leader for {topic}-{partition}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nserving {sorted(self.serving_ids())}; views: {self.describe(topic)}") from None

    def wait_new_leader(self, topic: str, partition: int, old: int, timeout: float = 30.0) -> int:
        """A serving leader other than ``old``, agreed by every serving node."""
        def ok():
            views = self.views()
            leaders = set()
            for v in views.values():
                ps = v.partition(topic, partition)
                if ps is None:
                    return None
                leaders.add(ps.leader)
            if len(leaders) == 1 and (l := leaders.pop()) != old and l in self.serving_ids():
                return l
            return None
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.05,
                                message=f"a new leader (not {old}) for {topic}-{partition}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nserving {sorted(self.serving_ids())}; views: {self.describe(topic)}") from None

    def wait_isr_full(self, topic: str, partitions, rf: int = 3, timeout: float = 60.0) -> dict[int, PartitionState]:
        """Every serving node shows, for every partition: ``rf`` replicas, all of them
        in the ISR, and a serving leader in the ISR."""
        parts = list(partitions)

        def ok():
            views = self.views()
            if set(views) != self.serving_ids():
                return None
            serving = self.serving_ids()
            out = {}
            for v in views.values():
                for p in parts:
                    ps = v.partition(topic, p)
                    if ps is None or len(ps.replicas) != rf or sorted(ps.isr) != sorted(ps.replicas):
                        return None
                    if ps.leader not in ps.isr or ps.leader not in serving:
                        return None
                    out[p] = ps
            return out
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.1,
                                message=f"full ISR ({rf}) on every partition of {topic}")
        except AssertionError as e:
            raise AssertionError(f"{e}\ncurrent views: {self.describe(topic)}") from None

    def wait_isr(self, topic: str, partition: int, want: set[int], timeout: float = 30.0,
                 node_ids: set[int] | None = None) -> PartitionState:
        """Every serving node (or ``node_ids``) reports exactly ``want`` as the ISR."""
        def ok():
            views = self.views()
            ids = node_ids if node_ids is not None else self.serving_ids()
            st = None
            for i in ids:
                v = views.get(i)
                if v is None:
                    return None
                ps = v.partition(topic, partition)
                if ps is None or set(ps.isr) != want:
                    return None
                st = ps
            return st
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.05,
                                message=f"ISR of {topic}-{partition} == {sorted(want)}")
        except AssertionError as e:
            raise AssertionError(f"{e}\ncurrent views: {self.describe(topic)}") from None

    def wait_available(self, topic: str, partitions, min_isr: int = 2, timeout: float = 30.0) -> dict[int, View]:
        """Every serving node shows every partition with a serving leader in the ISR,
        an ISR of serving nodes only, and at least ``min_isr`` members."""
        parts = list(partitions)

        def ok():
            serving = self.serving_ids()
            views = self.views()
            if set(views) != serving:
                return None
            for v in views.values():
                for p in parts:
                    ps = v.partition(topic, p)
                    if ps is None or ps.leader not in serving or ps.leader not in ps.isr:
                        return None
                    if not set(ps.isr) <= serving or len(ps.isr) < min_isr:
                        return None
            return views
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.1,
                                message=f"{topic} available (serving leaders, ISR >= {min_isr} serving nodes)")
        except AssertionError as e:
            raise AssertionError(f"{e}\ncurrent views: {self.describe(topic)}") from None

    def describe(self, topic: str) -> str:
        """Each serving node's {partition: (leader, replicas, isr)}, plus the fault
        proxies' state, for failure messages."""
        out = {}
        for i, v in self.views().items():
            t = v.topics.get(topic)
            out[i] = None if t is None else {p: (s.leader, s.replicas, s.isr) for p, s in sorted(t[1].items())}
        text = f"{out}"
        if self.proxies:
            text += "; replication proxies " + ", ".join(
                f"node{i}: {'CUT' if p.is_cut else 'ok'} live={p.connections()} accepted={p.accepted} "
                f"held={p.held_total}" for i, p in sorted(self.proxies.items()))
        return text

    # ------------------------------------------------------------------ topics

    def create_topic(self, name: str, partitions: int, rf: int = 3, config: dict | None = None,
                     timeout: float = 60.0) -> None:
        """CreateTopics (retried while the controller settles) and wait for a full ISR everywhere."""
        def attempt():
            # A fresh client per attempt: a cached controller id may name a dead node.
            a = admin_client(self.bootstrap)
            fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf,
                                           config=config or {})], operation_timeout=10)
            try:
                fs[name].result(timeout=30)
                return True
            except Exception as e:  # retriable while a controller is elected
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    return True
                log(f"create {name}: {e}")
                return False
        h.wait_until(attempt, timeout=timeout, interval=0.5, message=f"creating topic {name}")
        self.wait_isr_full(name, range(partitions), rf=rf, timeout=timeout)


def cluster_fixture(request, tmp_path):
    """Body of a ``cluster_factory`` fixture (a generator: ``yield from`` it).

    ``cluster_factory(voters=3, brokers=0, proxies=False, overrides={...})``
    starts a cluster and waits until every node sees every broker and a controller.
    At teardown every process is killed; a node that died on its own or logged a
    panic fails the test. Broker logs are attached to failure reports."""
    binary = samsa_bin()
    clusters: list[Cluster] = []
    all_nodes: list[ClusterNode] = []
    request.node._samsa_brokers = all_nodes

    def make(voters: int = 3, brokers: int = 0, proxies: bool = False,
             overrides: dict[str, str] | None = None) -> Cluster:
        c = Cluster(binary, tmp_path / f"cluster{len(clusters)}", voters=voters, brokers=brokers,
                    proxies=proxies, overrides=overrides)
        clusters.append(c)
        all_nodes.extend(c.nodes.values())
        t0 = time.monotonic()
        c.start()
        log(f"cluster of {voters} voters + {brokers} brokers ready in {time.monotonic() - t0:.1f}s")
        return c

    yield make

    for b in list(_BACKGROUND):  # a failed test may leave clients running
        b.abort()
    _BACKGROUND.clear()
    complaints = []
    for c in clusters:
        complaints += c.teardown()
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


# =====================================================================================
# Workload: continuous acks=all producer with every delivery report recorded
# =====================================================================================

@dataclass
class Ack:
    partition: int
    offset: int
    at: float  # monotonic time the delivery report was served (a few ms after the broker answered)


def client_conf(bootstrap: str) -> dict:
    c = h.base_conf(bootstrap)
    c.update({
        # Reconnect quickly to a restarted broker and re-learn leaders quickly.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 1000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 500,
        # Brokers are killed on purpose; librdkafka's "Connect ... refused" error
        # logs would drown the report. Delivery reports still carry every error.
        "log_level": 2,
    })
    return c


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient(client_conf(bootstrap))


class Workload:
    """A producer thread sending unique values round-robin over ``partitions`` at
    roughly ``rate`` records/s with acks=all, recording each delivery report."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, *, idempotence: bool = True,
                 rate: float = 250.0, message_timeout_ms: int = 30000, name: str = "w", **conf):
        self.topic = topic
        self.partitions = partitions
        self.idempotence = idempotence
        self.run = f"{name}{uuid.uuid4().hex[:6]}"
        self.interval = 1.0 / rate
        self.message_timeout_ms = message_timeout_ms
        c = client_conf(bootstrap)
        c.update({
            "acks": "all",
            "enable.idempotence": idempotence,
            "message.timeout.ms": message_timeout_ms,
            "request.timeout.ms": 5000,
            "linger.ms": 5,
        })
        c.update(conf)
        self.producer = Producer(c)
        self._lock = threading.Lock()
        self.sent: dict[str, tuple[int, float]] = {}  # value -> (partition, produce() time)
        self.acked: dict[str, Ack] = {}
        self.failed: dict[str, KafkaError] = {}
        self.undelivered = 0
        self._stop = threading.Event()
        self._aborted = False
        self._thread = threading.Thread(target=self._loop, name=f"producer-{self.run}", daemon=True)
        self.crash: BaseException | None = None

    def start(self) -> "Workload":
        self._thread.start()
        _BACKGROUND.append(self)
        return self

    def abort(self) -> None:
        """Teardown: stop without waiting for outstanding deliveries, and release the
        client (a failed test's traceback would otherwise keep it reconnecting)."""
        self._aborted = True
        self._stop.set()
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.producer.purge()
            self.producer = None

    def _on_delivery(self, err, msg) -> None:
        v = msg.value().decode()
        now = time.monotonic()
        with self._lock:
            if err is not None:
                self.failed[v] = err
                return
            # (Message.latency() is measured at this call too, so the clock is as good.)
            self.acked[v] = Ack(msg.partition(), msg.offset(), now)

    def _loop(self) -> None:
        try:
            seq = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                v = f"{self.run}-{seq}"
                p = seq % self.partitions
                try:
                    self.producer.produce(self.topic, value=v.encode(), partition=p,
                                          on_delivery=self._on_delivery)
                except BufferError:
                    self.producer.poll(0.05)
                    continue
                with self._lock:
                    self.sent[v] = (p, time.monotonic())
                seq += 1
                next_at += self.interval
                wait = next_at - time.monotonic()
                self.producer.poll(max(0.0, wait))
                while (wait := next_at - time.monotonic()) > 0:
                    self.producer.poll(wait)
            if not self._aborted:
                self.undelivered = self.producer.flush(self.message_timeout_ms / 1000 + 10)
        except BaseException as e:  # surfaced by stop()
            self.crash = e

    def stop(self) -> "Workload":
        """Stop producing and wait for every outstanding delivery report."""
        self._stop.set()
        self._thread.join(timeout=self.message_timeout_ms / 1000 + 30)
        assert not self._thread.is_alive(), "producer thread did not finish"
        if self in _BACKGROUND:
            _BACKGROUND.remove(self)
        if self.crash is not None:
            raise self.crash
        log(f"workload {self.run}: sent {len(self.sent)}, acked {len(self.acked)}, "
            f"failed {len(self.failed)}, undelivered {self.undelivered}; "
            f"errors {self.error_summary()}")
        return self

    def record_external(self, value: str, partition: int, err: KafkaError | None, offset: int | None) -> None:
        """A record of this topic produced outside the workload (a probe): the checker
        must know it, and holds it to its acknowledgement like any other."""
        now = time.monotonic()
        with self._lock:
            self.sent[value] = (partition, now)
            if err is None:
                self.acked[value] = Ack(partition, offset, now)
            else:
                self.failed[value] = err

    def error_summary(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(e.name() for e in self.failed.values()))

    def acked_count(self, partition: int | None = None) -> int:
        with self._lock:
            return sum(1 for a in self.acked.values() if partition is None or a.partition == partition)

    def acks_since(self, t: float, partition: int | None = None) -> list[Ack]:
        with self._lock:
            return sorted((a for a in self.acked.values()
                           if a.at > t and (partition is None or a.partition == partition)),
                          key=lambda a: a.at)

    def wait_acks_since(self, t: float, partition: int | None = None, n: int = 1,
                        timeout: float = 30.0, what: str = "") -> list[Ack]:
        """Wait until ``n`` acknowledgements arrived after ``t`` (on ``partition``)."""
        def ok():
            if self.crash is not None:
                raise self.crash
            acks = self.acks_since(t, partition)
            return acks if len(acks) >= n else None
        where = "" if partition is None else f" on partition {partition}"
        try:
            return h.wait_until(ok, timeout=timeout, interval=0.05,
                                message=f"{n} acknowledged records{where} {what}".rstrip())
        except AssertionError as e:
            raise AssertionError(f"{e}; producer errors so far: {self.error_summary()}") from None


def probe(bootstrap: str, topic: str, partition: int, value: str, timeout_ms: int = 3000):
    """Produce one record with acks=all and no retries; returns (error or None, offset).
    Without retries the delivery report carries the broker's own error code."""
    c = client_conf(bootstrap)
    c.update({"acks": "all", "enable.idempotence": False, "retries": 0, "linger.ms": 0,
              "message.timeout.ms": timeout_ms, "request.timeout.ms": timeout_ms})
    p = Producer(c)
    out = []
    p.produce(topic, value=value.encode(), partition=partition,
              on_delivery=lambda err, msg: out.append((err, msg.offset())))
    p.flush(timeout_ms / 1000 + 10)
    assert out, f"no delivery report for probe {value}"
    return out[0]


class LeaderWatch:
    """Polls Metadata from ``observers`` every ~20 ms in a thread, recording
    (monotonic time the answer arrived, observer, {partition: leader})."""

    def __init__(self, cluster: "Cluster", topic: str, partitions, observers):
        self.topic = topic
        self.partitions = list(partitions)
        self.targets = [(i, cluster.nodes[i].bootstrap) for i in observers]
        self.seen: list[tuple[float, int, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-watch", daemon=True)

    def start(self) -> "LeaderWatch":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            for i, addr in self.targets:
                try:
                    v = metadata_of(addr, i, timeout=1.0)
                except (OSError, ValueError, TimeoutError):
                    continue
                leaders = {}
                for p in self.partitions:
                    ps = v.partition(self.topic, p)
                    leaders[p] = -2 if ps is None else ps.leader
                self.seen.append((time.monotonic(), i, leaders))
            self._stop.wait(0.02)

    def stop(self) -> list[tuple[float, int, dict[int, int]]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


# =====================================================================================
# A consumer group reading the topic while the cluster is disturbed
# =====================================================================================

class _RingLogger:
    """A ``logging.Logger`` stand-in for librdkafka's ``logger`` option that keeps
    only the newest ``lines_max`` lines."""

    # librdkafka's per-request fetch lines (ten a second per broker) would push
    # everything else out of the ring; fetch errors and resets are kept.
    ROUTINE = re.compile(r"Fetch topic .* at offset|Fetch \d+/\d+/\d+ toppar|Heartbeat for group"
                         r"|Leader \d+ Epoch \d+$|leader (\d+) epoch (\d+) -> leader \1 epoch \2$"
                         r"|requested topic\(s\) seen in metadata")

    # Group membership lines go to a ring of their own: partition migrations
    # during leader changes are numerous enough to push them out.
    GROUP = re.compile(r"^\S*(CGRP|JOIN|SYNC|HEARTBEAT|COORD|ASSIGN|REBALANCE|REVOKE|COMMIT|MEMBER|"
                       r"LEAVE|SUBSCRI|PARTADD|PARTDEL|SESSTMOUT|MAXPOLL)")

    def __init__(self, lines_max: int):
        self.lines: deque[str] = deque(maxlen=lines_max)
        self.group_lines: deque[str] = deque(maxlen=lines_max)

    def log(self, level, fmt, *args) -> None:
        line = fmt % args if args else fmt
        if self.ROUTINE.search(line):
            return
        line = f"{time.strftime('%H:%M:%S')} {line}"
        self.lines.append(line)
        if self.GROUP.search(line[9:]):
            self.group_lines.append(line)


class GroupReader:
    """Consumes ``topic`` in group ``group`` (commit after processing, as the user's
    articles do), recording every value seen. When the group falls behind,
    the failure shows the client's state and its recent group/fetch log."""

    CLIENT_LOG_LINES_MAX = 1000

    def __init__(self, bootstrap: str, topic: str, group: str | None = None):
        self.topic = topic
        self.group = group or h.unique_topic("g")
        self._lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.records = 0
        self.progress: dict[int, tuple[int, float]] = {}  # partition -> (last offset, when)
        self.errors: Counter[str] = Counter()
        self.crash: BaseException | None = None
        c = client_conf(bootstrap)
        c.update({
            "group.id": self.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            # Also the rebalance timeout: a member whose application stopped
            # calling consume() (see _watch) leaves, or is dropped, within it.
            "max.poll.interval.ms": 15000,
            # The client's own view (joins, assignments, fetch positions, leader
            # changes) is kept in a ring and printed if the group falls behind.
            "debug": "cgrp,fetch,topic",
            "log_level": 7,
            "logger": _RingLogger(self.CLIENT_LOG_LINES_MAX),
        })
        self._client_log = c["logger"]
        self._conf = c
        self.consumer = Consumer(c)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self.consumer,), name=f"group-{self.group}",
                                        daemon=True)
        # When consume() last returned: a call with a 0.1 s timeout that has not
        # returned for HUNG_S means the client itself is stuck (see _watch).
        self._loop_at = time.monotonic()
        self.hung: list[str] = []  # one report per replaced client

    HUNG_S = 20.0

    def start(self) -> "GroupReader":
        self.consumer.subscribe([self.topic])
        self._thread.start()
        threading.Thread(target=self._watch, name=f"watch-{self.group}", daemon=True).start()
        _BACKGROUND.append(self)
        return self

    def _watch(self) -> None:
        """librdkafka 2.16 can deadlock inside consume() after broker kills
        (confluentinc/librdkafka#5476: no log line, no heartbeat, no return).
        A real application needs a watchdog for that, and so does this reader:
        the stuck client is abandoned (closing it would block too) and a new one
        joins the same group. The coordinator must then expire the silent
        member and hand its partitions over from the committed offsets, so
        every acknowledged record must still reach the group. Each replacement
        is reported in the test output with the old client's last log lines."""
        while not self._stop.wait(1.0):
            if self.crash is not None or time.monotonic() - self._loop_at < self.HUNG_S:
                continue
            stuck = self.consumer
            report = (f"consume() had not returned for {time.monotonic() - self._loop_at:.0f}s; "
                      f"last client log lines:\n{self._log_tail(40)}")
            self.hung.append(report)
            print(f"\nGroupReader {self.group}: client stuck, replaced by a new member ({report})")
            self._client_log = _RingLogger(self.CLIENT_LOG_LINES_MAX)
            conf = dict(self._conf, logger=self._client_log)
            self.consumer = Consumer(conf)
            self.consumer.subscribe([self.topic])
            self._loop_at = time.monotonic()
            self._abandoned.append(stuck)
            self._thread = threading.Thread(target=self._loop, args=(self.consumer,),
                                            name=f"group-{self.group}-{len(self.hung)}", daemon=True)
            self._thread.start()

    _abandoned: list = []  # stuck clients: never closed, never touched again

    def abort(self) -> None:
        """Stop reading and close the client from a helper thread: a stuck
        client's close() must not block the main thread (pytest's timeout
        fires only there)."""
        self._stop.set()
        self._thread.join(timeout=10)
        if not self._thread.is_alive() and self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            closer = threading.Thread(target=consumer.close, daemon=True)
            closer.start()
            closer.join(timeout=10)

    def _loop(self, consumer) -> None:
        try:
            while not self._stop.is_set() and consumer is self.consumer:
                msgs = consumer.consume(num_messages=500, timeout=0.1)
                self._loop_at = time.monotonic()
                if consumer is not self.consumer:
                    return  # replaced while stuck: its late records are not counted
                if not msgs:
                    continue
                good = 0
                for m in msgs:
                    if m.error():
                        with self._lock:
                            self.errors[m.error().name()] += 1
                        continue
                    good += 1
                    with self._lock:
                        self.seen[m.value().decode()] += 1
                        self.records += 1
                        self.progress[m.partition()] = (m.offset(), time.monotonic())
                if good:
                    try:
                        consumer.commit(asynchronous=True)
                    except Exception as e:  # no offsets / coordinator moving: retried next batch
                        with self._lock:
                            self.errors[type(e).__name__] += 1
        except BaseException as e:
            self.crash = e

    def count(self) -> int:
        with self._lock:
            return self.records

    def missing(self, values) -> set[str]:
        with self._lock:
            return {v for v in values if v not in self.seen}

    def wait_seen(self, values, timeout: float = 60.0) -> None:
        values = set(values)

        def ok():
            if self.crash is not None:
                raise self.crash
            return not self.missing(values)
        try:
            h.wait_until(ok, timeout=timeout, interval=0.2,
                         message="the consumer group to read every acknowledged record")
        except AssertionError as e:
            self._stop_loop()
            self._fail(e, values)

    def _stop_loop(self) -> None:
        """Stop the consume loop before reporting. The report never calls the
        consumer itself: librdkafka 2.16 can deadlock its main thread
        (confluentinc/librdkafka#5476, seen here after kill -9 rounds), and
        assignment()/position() then block while holding the GIL, which froze
        the whole test run, pytest's timeout included."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _log_tail(self, lines: int = 120) -> str:
        group = "\n".join(list(self._client_log.group_lines)[-lines:])
        rest = "\n".join(list(self._client_log.lines)[-lines:])
        return f"-- group membership --\n{group}\n-- everything --\n{rest}"

    def _fail(self, e: AssertionError, values: set[str]) -> None:
        now = time.monotonic()
        missing = self.missing(values)
        with self._lock:
            progress = {p: f"offset {o}, {now - t:.1f}s ago" for p, (o, t) in sorted(self.progress.items())}
            errors = dict(self.errors)
        raise AssertionError(
            f"{e}: {len(missing)} of {len(values)} never reached the group (e.g. {sorted(missing)[:5]}); "
            f"group {self.group}: consumer errors {errors}; clients replaced after hanging: {len(self.hung)}; "
            f"consume() last returned {now - self._loop_at:.1f}s ago; "
            f"last record per partition {progress}\n"
            f"last librdkafka group/fetch log lines:\n{self._log_tail()}") from None

    def stop(self) -> None:
        if self in _BACKGROUND:
            _BACKGROUND.remove(self)
        self.abort()
        if self.crash is not None:
            raise self.crash


# =====================================================================================
# The checker
# =====================================================================================

@dataclass
class CheckReport:
    acked: int = 0
    failed: int = 0
    read: int = 0
    lost: list = field(default_factory=list)          # acked, not read at all
    moved: list = field(default_factory=list)         # acked, read but not at the acked offset
    implicit: int = 0                                 # acked without an offset, found in the acked partition
    duplicated: dict = field(default_factory=dict)    # value -> number of copies (> 1)
    unacked_read: int = 0                             # failed/in-doubt writes that did land
    phantoms: list = field(default_factory=list)      # values nobody produced
    gaps: dict = field(default_factory=dict)          # partition -> problem
    reordered: list = field(default_factory=list)     # idempotent: acked values out of send order

    def summary(self) -> str:
        return (f"acked={self.acked} failed={self.failed} read={self.read} lost={len(self.lost)} "
                f"moved={len(self.moved)} implicit={self.implicit} duplicated={len(self.duplicated)} "
                f"unacked_read={self.unacked_read} phantoms={len(self.phantoms)} gaps={len(self.gaps)} "
                f"reordered={len(self.reordered)}")


def drain(bootstrap: str, topic: str, partitions: int,
          timeout: float = 90.0) -> tuple[dict[int, list[tuple[int, str]]], dict[int, tuple[int, int]]]:
    """Every record of every partition from offset 0 up to the high watermark, and
    the (log start, high watermark) of each partition."""
    got = h.consume_partitions(bootstrap, topic, range(partitions), timeout=timeout,
                               **{"reconnect.backoff.max.ms": 500})
    marks = {}
    c = Consumer({**client_conf(bootstrap), "group.id": "samsa-e2e-assign-only"})
    try:
        for p in range(partitions):
            marks[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
    finally:
        c.close()
    data = {p: [(r.offset, r.value.decode(errors="replace") if r.value is not None else "<null>")
                for r in recs] for p, recs in got.items()}
    return data, marks


def check_log(w: Workload, bootstrap: str, *, allow_duplicates: bool | None = None,
              expect_order: bool | None = None) -> CheckReport:
    """Drain ``w.topic`` and compare with what the producer was told.

    Always: every acknowledged value is present at exactly the partition/offset
    its delivery report gave (in the acknowledged partition when the report
    carries no offset: librdkafka's implicit acks); every offset of each partition holds one record,
    offsets strictly increase from 0 with no gaps; no value was invented.
    With idempotence (the default for ``allow_duplicates``): no value appears
    twice and, within a partition, acknowledged values keep the order they were
    sent in. Without idempotence, retried batches may legitimately be written
    twice (a lost response, then a retry); such extra copies are counted, never
    at the cost of the acknowledged copy.
    """
    if allow_duplicates is None:
        allow_duplicates = not w.idempotence
    if expect_order is None:
        expect_order = w.idempotence
    data, marks = drain(bootstrap, w.topic, w.partitions)
    rep = CheckReport(acked=len(w.acked), failed=len(w.failed))
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    at: dict[tuple[int, int], str] = {}
    for p, recs in data.items():
        offsets = [o for o, _ in recs]
        if offsets != list(range(len(offsets))):
            bad = next(i for i, o in enumerate(offsets) if o != i)
            rep.gaps[p] = (f"offsets not dense from 0: index {bad} holds offset {offsets[bad]} "
                           f"(around {offsets[max(0, bad - 2):bad + 3]})")
        lo, hi = marks[p]
        if lo != 0 or hi != len(offsets):
            rep.gaps.setdefault(p, f"watermarks (log start {lo}, high {hi}) but read {len(offsets)} records from 0")
        for o, v in recs:
            rep.read += 1
            where[v].append((p, o))
            at[(p, o)] = v
    for v, places in where.items():
        if v not in w.sent:
            rep.phantoms.append((v, places))
        if len(places) > 1:
            rep.duplicated[v] = len(places)
        if v not in w.acked and v in w.sent:
            rep.unacked_read += 1
    for v, a in w.acked.items():
        places = where.get(v)
        if not places:
            rep.lost.append((v, a.partition, a.offset))
        elif a.offset is None:
            # librdkafka acknowledges an idempotent batch whose own answer was
            # lost once a later batch of the same producer succeeds ("implicitly
            # acked by subsequent batch success"); its report carries no offset.
            rep.implicit += 1
            if a.partition not in {p for p, _ in places}:
                rep.moved.append((v, (a.partition, None), places, None))
        elif (a.partition, a.offset) not in places:
            rep.moved.append((v, (a.partition, a.offset), places, at.get((a.partition, a.offset))))
    if expect_order:
        for p in range(w.partitions):
            prefix = f"{w.run}-"
            seqs = [int(v[len(prefix):]) for _, v in data.get(p, [])
                    if v in w.acked and v.startswith(prefix)]
            for i in range(1, len(seqs)):
                if seqs[i] <= seqs[i - 1]:
                    rep.reordered.append((p, seqs[i - 1], seqs[i]))
    log(f"checker ({'idempotent' if w.idempotence else 'non-idempotent'}): {rep.summary()}")

    problems = []
    if rep.lost:
        problems.append(f"{len(rep.lost)} acknowledged records LOST (value, partition, acked offset): {rep.lost[:5]}")
    if rep.moved:
        problems.append(f"{len(rep.moved)} acknowledged records not at their acknowledged offset "
                        f"(value, acked at, found at, what the acked offset holds): {rep.moved[:5]}")
    if rep.gaps:
        problems.append(f"offset gaps: {rep.gaps}")
    if rep.phantoms:
        problems.append(f"{len(rep.phantoms)} values nobody produced: {rep.phantoms[:5]}")
    if rep.duplicated and not allow_duplicates:
        problems.append(f"{len(rep.duplicated)} values written more than once with idempotence on: "
                        f"{list(rep.duplicated.items())[:5]}")
    if rep.reordered:
        problems.append(f"{len(rep.reordered)} acknowledged records out of send order within a partition "
                        f"(partition, earlier seq, later seq): {rep.reordered[:5]}")
    assert not problems, "checker failed: " + rep.summary() + "\n" + "\n".join(problems)
    assert rep.acked > 0, "the workload got no acknowledgement at all"
    return rep


def shuffled(xs, rng: random.Random) -> list:
    xs = list(xs)
    rng.shuffle(xs)
    return xs


def samsa_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([samsa_bin(), *args], capture_output=True, timeout=timeout)


__all__ = ["Cluster", "ClusterNode", "Workload", "GroupReader", "check_log", "cluster_fixture", "log",
           "find_coordinator_of", "metadata_of", "POST_KILL_GUARD_S", "View", "PartitionState", "shuffled", "samsa_cli",
           "probe", "LeaderWatch", "client_conf", "admin_client",
           "BROKER_SESSION_TIMEOUT_MS", "ERR_NOT_ENOUGH_REPLICAS",
           "ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND"]
