"""The HTTP listener: Prometheus metrics checked against what real clients
did, and the health checks (issue: "See everything")."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

import pytest

import helpers as h
from cluster import cluster_fixture


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def get(port: int, path: str) -> tuple[int, str, str]:
    # The HTTP listener starts a moment after the Kafka port accepts (the
    # test's sign that the broker is up): a refused connection is retried.
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by the Prometheus client library,
    keyed by (sample name, sorted labels)."""
    status, ctype, text = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(m, name: str, **labels) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


def consume(bootstrap: str, topic: str, group: str, n: int) -> Consumer:
    """A group member that has read `n` records of `topic` (still open)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 60
    while got < n and time.monotonic() < deadline:
        got += sum(1 for m in c.consume(500, timeout=0.5) if not m.error())
    assert got == n
    return c


def test_metrics_count_what_clients_did(broker):
    port = broker.http_port
    topic = h.unique_topic("metrics")
    h.create_topic(h.admin(broker.bootstrap), topic, partitions=3)
    before = scrape(port)
    assert sample(before, "samsa_topic_records_in_total", topic=topic) in (None, 0.0)

    n, size = 1000, 100
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, b"x" * size, partition=i % 3)
    assert p.flush(30) == 0

    c = consume(broker.bootstrap, topic, h.unique_topic("mg"), n)

    m = scrape(port)
    assert sample(m, "samsa_topic_records_in_total", topic=topic) == n
    bytes_in = sample(m, "samsa_topic_in_bytes_total", topic=topic)
    # Record batches carry headers: more than the payloads, and not hugely more.
    assert n * size < bytes_in < n * size * 1.5, bytes_in
    # Everything produced was read once by the consumer (one fetch per batch
    # at least), so at least as many bytes went out as came in.
    assert sample(m, "samsa_topic_out_bytes_total", topic=topic) >= bytes_in
    assert sample(m, "samsa_requests_total", api="Produce") >= 1
    assert sample(m, "samsa_requests_total", api="Fetch") >= 1
    assert sample(m, "samsa_request_duration_seconds_count", api="Produce") == \
        sample(m, "samsa_requests_total", api="Produce")
    assert sample(m, "samsa_connections", listener="PLAINTEXT") >= 1
    # The three partitions' logs hold exactly the bytes that came in.
    sizes = [sample(m, "samsa_log_size_bytes", topic=topic, partition=str(i)) for i in range(3)]
    assert sum(sizes) == bytes_in, sizes
    assert sample(m, "samsa_log_segments", topic=topic, partition="0") == 1
    assert sample(m, "samsa_under_replicated_partitions") == 0
    assert sample(m, "samsa_offline_partitions") == 0
    assert sample(m, "samsa_active_controller") == 1
    assert sample(m, "samsa_groups", type="classic", state="Stable") >= 1
    assert sample(m, "samsa_process_resident_memory_bytes") > 1_000_000
    assert sample(m, "samsa_process_cpu_seconds_total") > 0
    c.close()

    # A deleted topic's series go away.
    admin = h.admin(broker.bootstrap)
    admin.delete_topics([topic])[topic].result()
    h.wait_until(lambda: sample(scrape(port), "samsa_topic_records_in_total", topic=topic) is None,
                 timeout=20, message="the deleted topic's series to disappear")


def consume_and_commit(bootstrap: str, topic: str, group: str, n: int) -> None:
    c = consume(bootstrap, topic, group, n)
    c.commit(asynchronous=False)
    c.close()


def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for part, count in per_partition.items():
        for i in range(count):
            p.produce(topic, f"{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def lag_of(m, group: str, topic: str) -> dict[int, float]:
    return {int(dict(labels)["partition"]): v for (name, labels), v in m.items()
            if name == "samsa_group_lag_records" and dict(labels).get("group") == group
            and dict(labels).get("topic") == topic}


def test_consumer_lag_is_computed_by_the_broker(broker):
    topic, group = h.unique_topic("lag"), h.unique_topic("lag-g")
    h.create_topic(h.admin(broker.bootstrap), topic, partitions=3)
    produce(broker.bootstrap, topic, {0: 100, 1: 100, 2: 100})
    consume_and_commit(broker.bootstrap, topic, group, 300)
    assert lag_of(scrape(broker.http_port), group, topic) == {0: 0, 1: 0, 2: 0}
    produce(broker.bootstrap, topic, {0: 30, 2: 7})
    assert lag_of(scrape(broker.http_port), group, topic) == {0: 30, 1: 0, 2: 7}


def test_health_checks(broker):
    status, _, body = get(broker.http_port, "/health/live")
    assert status == 200, body
    status, _, body = get(broker.http_port, "/health/ready")
    assert (status, body) == (200, "ready\n")
    status, _, _ = get(broker.http_port, "/nope")
    assert status == 404


def test_under_replicated_partitions_follow_a_dead_follower(cluster_factory):
    c = cluster_factory(3)
    topic = h.unique_topic("urp")
    c.create_topic(topic, 3)
    c.wait_isr_full(topic, range(3))
    leader = c.leader_of(topic, 0)
    follower = next(i for i in c.ids if i != leader)
    port = c.nodes[leader].http_port

    def urp():
        return sample(scrape(port), "samsa_under_replicated_partitions")
    assert urp() == 0

    # Lag reported by the group's coordinator covers partitions led by other
    # nodes too (their high watermarks are asked of their leaders).
    group = h.unique_topic("urp-g")
    produce(c.bootstrap, topic, {0: 50, 1: 50, 2: 50})
    c.wait_isr_full(topic, range(3))
    # Followers have fetched everything, consumers nothing: replication is
    # not counted as bytes out (Kafka's BytesOutPerSec excludes it too).
    out = [sample(scrape(n.http_port), "samsa_topic_out_bytes_total", topic=topic) for n in c.nodes.values()]
    assert all(v in (None, 0.0) for v in out), out
    consume_and_commit(c.bootstrap, topic, group, 150)
    produce(c.bootstrap, topic, {0: 5, 1: 6, 2: 7})
    admin = h.admin(c.bootstrap)
    coordinator = admin.describe_consumer_groups([group])[group].result().coordinator.id
    leaders = {c.leader_of(topic, p) for p in range(3)}
    print(f"\ncoordinator {coordinator}, partition leaders {leaders}")
    h.wait_until(lambda: lag_of(scrape(c.nodes[coordinator].http_port), group, topic) == {0: 5, 1: 6, 2: 7},
                 timeout=20, message="the coordinator's lag for every partition")
    c.kill9(follower)
    # The cluster's replica.lag.time.max.ms is short: the ISR shrinks.
    h.wait_until(lambda: urp() >= 1, timeout=60, message="the leader to report under-replicated partitions")
    c.restart(follower)
    c.wait_isr_full(topic, range(3))
    h.wait_until(lambda: urp() == 0, timeout=60, message="under-replicated partitions back to 0")
    h.wait_until(lambda: get(c.nodes[follower].http_port, "/health/ready")[0] == 200, timeout=30,
                 message="the restarted node to be ready")


def test_an_http_address_in_use_stops_startup(tmp_path):
    """A configured http.listeners address that cannot be bound ends the
    process with an error (before, the broker kept running with its Kafka
    listeners closed: up, but refusing every client)."""
    import socket
    import subprocess

    from conftest import free_port, samsa_bin

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([samsa_bin(), "serve", "--data-dir", str(tmp_path / "data"),
                            "--listen", f"127.0.0.1:{free_port()}",
                            "--set", f"http.listeners=http://127.0.0.1:{port}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, stderr
    assert "serving" in stderr and "in use" in stderr.lower(), stderr
