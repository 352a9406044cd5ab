"""Several log directories (JBOD): `samsa reassign-partitions` with
`log_dirs` moves a replica to another log directory (AlterReplicaLogDirs)
while a confluent-kafka producer writes to it, across segment rolls; every
acknowledged record is then readable once, in order, after the swap and
after a restart. In a 3-node cluster the leader's replica moves while the
leader is killed (leadership moves away and back to the moved replica): no
acknowledged record is lost and the replica ends in the new directory.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers as h
from cluster import Workload, check_log, cluster_fixture, log
from conftest import Broker, samsa_bin


class JbodBroker(Broker):
    """A broker whose `log.dirs` are two directories (instead of --data-dir)."""

    def __init__(self, binary: str, workdir: Path, sets: list[str], name: str = "jbod"):
        super().__init__(binary, workdir, sets, name=name)
        self.dirs = [workdir / "d1", workdir / "d2"]

    def command(self) -> list[str]:
        cmd = [self.binary, "serve", "--listen", self.bootstrap,
               "--set", "log.dirs=" + ",".join(str(d) for d in self.dirs)]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd


def run_jbod(request, tmp_path, sets: list[str]):
    """Body of a fixture (``yield from`` it): a started JbodBroker with
    ``sets``, checked at teardown."""
    b = JbodBroker(samsa_bin(), tmp_path / "jbod", sets)
    request.node._samsa_brokers = [b]
    b.start()
    yield b
    complaint = b.teardown()
    if complaint:
        pytest.fail(complaint + "\n" + b.log_tail(), pytrace=False)


@pytest.fixture
def jbod(request, tmp_path):
    yield from run_jbod(request, tmp_path, ["log.segment.bytes=1048576"])


def holder(b: JbodBroker, topic: str) -> Path | None:
    held = [d for d in b.dirs if (d / f"{topic}-0").is_dir()]
    return held[0] if len(held) == 1 else None


@pytest.mark.timeout(240)
def test_a_replica_moves_between_log_dirs_while_producing_and_loses_nothing(jbod, tmp_path):
    b = jbod
    a = h.admin(b.bootstrap)
    topic = h.unique_topic("jbod")
    h.create_topic(a, topic, partitions=1)
    h.wait_until(lambda: holder(b, topic) is not None, message="the partition directory")
    source = holder(b, topic)
    target = next(d for d in b.dirs if d != source)

    value = b"x" * 1000
    log = h.DeliveryLog()
    stop = threading.Event()
    p = h.producer(b.bootstrap, acks="all", **{"linger.ms": 5})

    def produce():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=f"{i:08d}".encode() + value, on_delivery=log.callback)
                i += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)
            if i % 200 == 0:
                time.sleep(0.01)
        assert p.flush(60) == 0

    # About 3 MB before the move starts: three segments to copy.
    t = threading.Thread(target=produce)
    t.start()
    h.wait_until(lambda: len(log.ok) >= 3000, timeout=60, message="3000 records acknowledged")

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [1], "log_dirs": [str(target)]}]}))
    r = subprocess.run([samsa_bin(), "reassign-partitions", "--bootstrap-server", b.bootstrap,
                        "--reassignment-json-file", str(plan), "--execute"],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"Successfully started log directory move for: {topic}-0-1" in r.stdout, r.stdout

    h.wait_until(lambda: holder(b, topic) == target, timeout=90, interval=0.1,
                 message="the replica to be swapped into the target log directory")
    moved_at = len(log.ok)
    # Keep writing after the swap, then stop.
    h.wait_until(lambda: len(log.ok) >= moved_at + 1000, timeout=60, message="records after the swap")
    stop.set()
    t.join(90)
    assert not t.is_alive()
    assert not log.errors, log.errors[:3]
    acked = sorted((d.offset, d.value) for d in log.ok)
    assert [o for o, _ in acked] == list(range(len(acked))), "acknowledged offsets are dense"
    assert any(f.name.endswith(".log") for f in (target / f"{topic}-0").iterdir())
    assert len([f for f in (target / f"{topic}-0").iterdir() if f.name.endswith(".log")]) >= 3, \
        "segments rolled"
    h.wait_until(lambda: not any(e.name.startswith(f"{topic}-0") for e in source.iterdir()),
                 message="the old copy removed")

    def stored():
        got = h.consume_partitions(b.bootstrap, topic, [0])[0]
        return [(r.offset, r.value) for r in got]

    assert stored() == acked, "every acknowledged record once, in order, after the swap"

    # kafka-log-dirs.sh's view: both directories, the replica in the target.
    r = subprocess.run([samsa_bin(), "log-dirs", "--describe", "--bootstrap-server", b.bootstrap,
                        "--broker-list", "1", "--topic-list", topic],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0] == "Querying brokers for log directories information", r.stdout
    assert lines[1] == "Received log directory information from brokers 1", r.stdout
    doc = json.loads(lines[2])
    assert doc["version"] == 1 and [x["broker"] for x in doc["brokers"]] == [1], doc
    dirs = {d["logDir"]: d for d in doc["brokers"][0]["logDirs"]}
    assert set(dirs) == {str(d) for d in b.dirs}, doc
    assert dirs[str(source)]["partitions"] == [], doc
    [replica] = dirs[str(target)]["partitions"]
    assert replica["partition"] == f"{topic}-0" and replica["isFuture"] is False, doc
    assert replica["size"] > 3_000_000 and replica["offsetLag"] == 0, doc
    assert dirs[str(target)]["error"] is None, doc
    b.stop()
    b.start()
    assert holder(b, topic) == target, "the move survives a restart"
    assert stored() == acked, "every acknowledged record once, in order, after a restart"


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def log_dirs_of(bootstrap: str, broker: int, topic: str) -> dict[str, list[str]] | None:
    """`samsa log-dirs --describe` of one broker: each log directory (as the
    broker names it) with the partitions of ``topic`` it holds (not counting
    a future log); None while the broker cannot answer."""
    r = subprocess.run([samsa_bin(), "log-dirs", "--describe", "--bootstrap-server", bootstrap,
                        "--broker-list", str(broker), "--topic-list", topic],
                       capture_output=True, timeout=60, text=True)
    if r.returncode != 0:
        return None
    doc = json.loads(r.stdout.splitlines()[2])
    [b] = doc["brokers"]
    return {d["logDir"]: [x["partition"] for x in d["partitions"] if not x["isFuture"]]
            for d in b["logDirs"]}


@pytest.mark.timeout(420)
def test_a_replica_move_survives_a_leader_kill_in_a_cluster_and_loses_nothing(cluster_factory):
    c = cluster_factory(overrides={
        # Relative to each node's working directory: two log dirs per node.
        "log.dirs": "d1,d2",
        "log.segment.bytes": "1048576",  # Kafka 4.x's least
    })
    topic = h.unique_topic("jbod-cluster")
    c.create_topic(topic, partitions=1)
    full = c.wait_isr_full(topic, [0])
    mover = full[0].leader
    node = c.nodes[mover]
    dirs = log_dirs_of(node.bootstrap, mover, topic)
    assert dirs is not None
    [source] = [d for d, parts in dirs.items() if f"{topic}-0" in parts]
    [target] = [d for d in dirs if d != source]
    target_path = node.workdir / Path(target).name
    log(f"{topic}-0: leader {mover} moves its replica {source} -> {target}")

    # About 4 MB (4 segments) before the move, written through the workload's
    # checker so that every one of them is held to its acknowledgement too.
    w = Workload(c.bootstrap, topic, 1, rate=200)
    pad = "x" * 2000
    fill = h.producer(c.bootstrap, acks="all", **{"enable.idempotence": True, "linger.ms": 20})
    # (not "{w.run}-<seq>": the checker orders those by their sequence number)
    values = [f"fill-{w.run}-{i}-{pad}" for i in range(2000)]
    dl = h.produce_and_flush(fill, [dict(value=v.encode(), partition=0) for v in values], topic, timeout=120)
    assert not dl.errors, dl.errors[:3]
    for d in sorted(dl.ok, key=lambda d: d.offset):
        w.record_external(d.value.decode(), 0, None, d.offset)
    w.start()
    w.wait_acks_since(time.monotonic(), n=50)

    plan_doc = {"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": full[0].replicas,
         "log_dirs": [target if r == mover else "any" for r in full[0].replicas]}]}
    plan = node.workdir / "plan.json"
    plan.write_text(json.dumps(plan_doc))
    r = subprocess.run([samsa_bin(), "reassign-partitions", "--bootstrap-server", c.bootstrap,
                        "--reassignment-json-file", str(plan), "--execute"],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"Successfully started log directory move for: {topic}-0-{mover}" in r.stdout, r.stdout

    # As soon as the copy exists in the target (future log or already swapped),
    # the leader dies: leadership moves to another replica while it is away.
    h.wait_until(lambda: any(e.name.startswith(f"{topic}-0") for e in target_path.iterdir()),
                 timeout=30, interval=0.01, message="the copy started in the target directory")
    c.kill9(mover)
    t_kill = time.monotonic()
    log(f"killed node {mover} with {sorted(e.name for e in target_path.iterdir())} in {target}")
    other = c.wait_new_leader(topic, 0, mover)
    log(f"{topic}-0: leader {mover} killed mid-move, {other} leads")
    w.wait_acks_since(t_kill, n=200, timeout=60, what="under the new leader")

    # Back up, the move finishes (resumed from the future log if it was cut off).
    c.restart(mover)
    h.wait_until(lambda: (log_dirs_of(node.bootstrap, mover, topic) or {}).get(target) == [f"{topic}-0"],
                 timeout=120, interval=0.5, message=f"{topic}-0 in {target} on node {mover}")
    h.wait_until(lambda: not any(e.name.startswith(f"{topic}-0") for e in (node.workdir / Path(source).name).iterdir()),
                 timeout=60, message="the old copy removed")
    c.wait_isr(topic, 0, set(full[0].replicas), timeout=60)

    # Leadership back to the moved replica (its preferred leader), then more writes.
    def led_by_mover():
        if c.leader_of(topic, 0) == mover:
            return True
        subprocess.run([samsa_bin(), "leader-election", "--bootstrap-server", c.bootstrap,
                        "--election-type", "preferred", "--topic", topic, "--partition", "0"],
                       capture_output=True, timeout=60)
        return c.leader_of(topic, 0) == mover
    if full[0].replicas[0] == mover:
        h.wait_until(led_by_mover, timeout=60, interval=1.0, message=f"node {mover} leading again")
    t_back = time.monotonic()
    w.wait_acks_since(t_back, n=200, timeout=60, what="after the move and the leader changes")
    w.stop()
    check_log(w, c.bootstrap)
    assert log_dirs_of(node.bootstrap, mover, topic) == {source: [], target: [f"{topic}-0"]}
    segments = [f for f in (target_path / f"{topic}-0").iterdir() if f.name.endswith(".log")]
    assert len(segments) >= 4, f"the moved replica holds the rolled segments: {segments}"
