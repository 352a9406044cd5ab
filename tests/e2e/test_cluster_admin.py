"""Cluster administration from the operator CLI, against real 3-node clusters:

- `samsa reassign-partitions` (kafka-reassign-partitions.sh): --execute moves a
  partition to another broker set, --verify reports progress, --list and
  --cancel handle an ongoing reassignment, --generate proposes a placement;
  records written before the move are all readable after it.
- `samsa leader-election` (kafka-leader-election.sh): a preferred election moves
  leadership back to the preferred replica once it has rejoined the ISR.
- `samsa topics describe --under-replicated-partitions / --unavailable-partitions`
  (kafka-topics.sh) while a broker is down, and after it rejoined.

Leadership and replica sets are checked with confluent-kafka (librdkafka) and
with raw Metadata requests to every node (cluster.py), not only through the CLI.
"""

from __future__ import annotations

import json
import time
import subprocess
from pathlib import Path

import pytest

import helpers as h
from cluster import Cluster, admin_client, cluster_fixture, log
from conftest import samsa_bin

CLI_TIMEOUT_S = 60
# The controller must move leadership only when asked (the periodic preferred
# leader rebalance would otherwise race the CLI).
NO_AUTO_REBALANCE = {"auto.leader.rebalance.enable": "false"}


@pytest.fixture
def cluster_factory(request, tmp_path):
    """``cluster_factory(voters=3, proxies=False, overrides=...)`` -> a started ``Cluster``."""
    yield from cluster_fixture(request, tmp_path)


def cli(c: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`samsa ARGS --bootstrap-server <every node>`; stdout/stderr as text."""
    cmd = [samsa_bin(), *args, "--bootstrap-server", c.bootstrap]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def write_json(tmp_path: Path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def reassignment(topic: str, partition: int, replicas: list[int]) -> dict:
    return {"version": 1, "partitions": [{"topic": topic, "partition": partition, "replicas": replicas}]}


def json_lines(text: str) -> list[dict]:
    """The JSON documents printed on their own lines (Kafka's tools mix them with prose)."""
    return [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


def produce(c: Cluster, topic: str, values: list[str], partitions: int) -> None:
    p = h.producer(c.bootstrap, acks="all")
    dl = h.produce_and_flush(p, [dict(value=v.encode(), partition=i % partitions) for i, v in enumerate(values)],
                             topic)
    assert not dl.errors, dl.errors[:3]


def read_all(c: Cluster, topic: str, partitions: int) -> list[str]:
    got = h.consume_partitions(c.bootstrap, topic, range(partitions), timeout=60)
    return [r.value.decode() for rs in got.values() for r in rs]


def partition_state(c: Cluster, topic: str, partition: int):
    """``topic``-``partition`` as the first serving node that answers Metadata sees it (None if none)."""
    for n in c.serving():
        v = c.view(n.node_id)
        if v is not None:
            return v.partition(topic, partition)
    return None


def wait_replicas(c: Cluster, topic: str, partition: int, replicas: list[int], timeout: float = 60.0):
    """Every serving node reports exactly ``replicas`` (in order), all in the ISR, and a leader among them."""
    def ok():
        views = c.views()
        if set(views) != c.serving_ids():
            return None
        for v in views.values():
            ps = v.partition(topic, partition)
            if ps is None or ps.replicas != replicas or sorted(ps.isr) != sorted(replicas):
                return None
            if ps.leader not in replicas:
                return None
        return True
    try:
        h.wait_until(ok, timeout=timeout, interval=0.1,
                     message=f"{topic}-{partition} on replicas {replicas} with a full ISR on every node")
    except AssertionError as e:
        raise AssertionError(f"{e}\ncurrent views: {c.describe(topic)}") from None


# =====================================================================================
# reassign-partitions
# =====================================================================================

@pytest.mark.timeout(240)
def test_reassign_partition_to_another_broker_set_keeps_every_record(cluster_factory, tmp_path):
    c = cluster_factory(3)
    topic = h.unique_topic("reassign")
    c.create_topic(topic, 3, rf=2)
    before = [f"before-{i}" for i in range(300)]
    produce(c, topic, before, 3)

    st = partition_state(c, topic, 0)
    current = list(st.replicas)
    spare = next(b for b in c.ids if b not in current)
    # Drops the first (preferred, normally leading) replica: leadership must move too.
    target = [spare, current[1]]
    log(f"{topic}-0: replicas {current} (leader {st.leader}) -> {target}")
    plan = write_json(tmp_path, "plan.json", reassignment(topic, 0, target))

    p = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--execute")
    assert "Current partition replica assignment" in p.stdout, p.stdout
    assert f"Successfully started partition reassignment for {topic}-0" in p.stdout, p.stdout
    rollback = json_lines(p.stdout)
    assert rollback and rollback[0]["version"] == 1, p.stdout
    assert rollback[0]["partitions"] == [{"topic": topic, "partition": 0, "replicas": current,
                                          "log_dirs": ["any"] * len(current)}], p.stdout
    assert "--reassignment-json-file option during rollback" in p.stdout

    def completed():
        v = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--verify")
        assert "Status of partition reassignment:" in v.stdout, v.stdout
        if f"Reassignment of partition {topic}-0 is completed." in v.stdout:
            return True
        assert f"Reassignment of partition {topic}-0 is still in progress." in v.stdout, v.stdout
        return False
    h.wait_until(completed, timeout=60, interval=0.5, message=f"--verify to report {topic}-0 completed")
    doc = json.loads(cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--verify",
                         "--output", "json").stdout)
    assert doc["complete"] is True, doc
    assert doc["partitions"] == [{"topic": topic, "partition": 0, "state": "completed",
                                  "target": target, "replicas": target}], doc

    # Every node and librdkafka see the new replica set with a full ISR.
    wait_replicas(c, topic, 0, target)
    md = admin_client(c.bootstrap).list_topics(topic, timeout=h.CLIENT_TIMEOUT_S)
    part = md.topics[topic].partitions[0]
    assert part.replicas == target, part
    assert sorted(part.isrs) == sorted(target), part
    assert part.leader in target, part
    # The other partitions did not move.
    for i in (1, 2):
        assert len(md.topics[topic].partitions[i].replicas) == 2

    assert "No partition reassignments found." in cli(c, "reassign-partitions", "--list").stdout
    assert json.loads(cli(c, "reassign-partitions", "--list", "--output", "json").stdout) == []
    p = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--cancel")
    assert f"No reassignment in progress for: {topic}-0" in p.stdout, p.stdout

    # Nothing written before the move is lost, and produce goes on (acks=all).
    after = [f"after-{i}" for i in range(90)]
    produce(c, topic, after, 3)
    got = read_all(c, topic, 3)
    assert sorted(got) == sorted(before + after), (
        f"{len(set(before + after) - set(got))} records missing, {len(got)} read")

    # Placement proposals: each partition gets 2 distinct brokers of the list, leaders spread.
    topics_file = write_json(tmp_path, "topics.json", {"version": 1, "topics": [{"topic": topic}]})
    p = cli(c, "reassign-partitions", "--generate", "--topics-to-move-json-file", topics_file,
            "--broker-list", "1,2,3")
    assert "Current partition replica assignment" in p.stdout
    assert "Proposed partition reassignment configuration" in p.stdout
    cur, proposed = json_lines(p.stdout)
    assert [x["replicas"] for x in cur["partitions"]][0] == target
    assert len(proposed["partitions"]) == 3
    for x in proposed["partitions"]:
        assert len(set(x["replicas"])) == 2 and set(x["replicas"]) <= {1, 2, 3}, proposed
    assert {x["replicas"][0] for x in proposed["partitions"]} == {1, 2, 3}, proposed
    # ... which --execute accepts as it is.
    plan2 = write_json(tmp_path, "proposed.json", proposed)
    cli(c, "reassign-partitions", "--reassignment-json-file", plan2, "--execute")
    for x in proposed["partitions"]:
        wait_replicas(c, topic, x["partition"], x["replicas"])
    assert sorted(read_all(c, topic, 3)) == sorted(before + after)


@pytest.mark.timeout(240)
def test_reassignment_errors_name_the_problem(cluster_factory, tmp_path):
    c = cluster_factory(3)
    topic = h.unique_topic("reassign-bad")
    c.create_topic(topic, 1, rf=2)

    p = cli(c, "reassign-partitions", "--reassignment-json-file",
            write_json(tmp_path, "b.json", reassignment(topic, 0, [1, 9])), "--execute", check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "non-existent brokerIDs: 9" in p.stderr, p.stderr

    p = cli(c, "reassign-partitions", "--reassignment-json-file",
            write_json(tmp_path, "u.json", reassignment("no-such-topic", 0, [1, 2])), "--execute", check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in p.stderr and "Hint:" in p.stderr, p.stderr

    p = cli(c, "reassign-partitions", "--reassignment-json-file",
            write_json(tmp_path, "p.json", reassignment(topic, 5, [1, 2])), "--execute", check=False)
    assert p.returncode == 1 and f"Unable to find partition {topic}-5" in p.stderr, p.stderr

    p = cli(c, "reassign-partitions", "--reassignment-json-file",
            write_json(tmp_path, "d.json", reassignment(topic, 0, [1, 1])), "--execute", check=False)
    assert p.returncode == 1 and "duplicate entries" in p.stderr, p.stderr

    p = cli(c, "reassign-partitions", "--execute", check=False)
    assert p.returncode != 0 and "--reassignment-json-file" in p.stderr, p.stderr
    p = cli(c, "reassign-partitions", "--reassignment-json-file", "x.json", check=False)
    assert p.returncode != 0, "a mode is required"


@pytest.mark.timeout(240)
def test_ongoing_reassignment_is_listed_verified_and_cancelled(cluster_factory, tmp_path):
    """With replication traffic to the leader cut, the added replica cannot catch
    up: the reassignment stays in progress until it is cancelled."""
    c = cluster_factory(3, proxies=True, overrides=NO_AUTO_REBALANCE)
    topic = h.unique_topic("reassign-cancel")
    c.create_topic(topic, 1, rf=2)
    values = [f"v{i}" for i in range(50)]
    produce(c, topic, values, 1)
    st = partition_state(c, topic, 0)
    leader = c.leader_of(topic, 0)
    current = list(st.replicas)
    spare = next(b for b in c.ids if b not in current)
    target = [spare] + [b for b in current if b != leader]
    plan = write_json(tmp_path, "plan.json", reassignment(topic, 0, target))

    c.cut(leader)
    try:
        p = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--execute")
        assert f"Successfully started partition reassignment for {topic}-0" in p.stdout, p.stdout

        v = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--verify")
        assert f"Reassignment of partition {topic}-0 is still in progress." in v.stdout, v.stdout
        listed = cli(c, "reassign-partitions", "--list")
        assert "Current partition reassignments:" in listed.stdout, listed.stdout
        assert f"{topic}-0: replicas: " in listed.stdout and f"adding: {spare}." in listed.stdout, listed.stdout
        doc = json.loads(cli(c, "reassign-partitions", "--list", "--output", "json").stdout)
        assert doc == [{"topic": topic, "partition": 0, "replicas": target + [leader],
                        "adding_replicas": [spare], "removing_replicas": [leader]}], doc

        # A second reassignment needs --additional, like Kafka's tool.
        p = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--execute", check=False)
        assert p.returncode == 1 and "--additional" in p.stderr, p.stderr

        p = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--cancel")
        assert f"Successfully cancelled partition reassignment(s) for: {topic}-0" in p.stdout, p.stdout
        v = cli(c, "reassign-partitions", "--reassignment-json-file", plan, "--verify")
        assert f"There is no active reassignment of partition {topic}-0" in v.stdout, v.stdout
        assert "No partition reassignments found." in cli(c, "reassign-partitions", "--list").stdout
    finally:
        c.heal(leader)

    # Back on the original brokers (a cancel keeps the replicas, reordered as Kafka does).
    def original():
        ps = partition_state(c, topic, 0)
        return ps is not None and sorted(ps.replicas) == sorted(current) and sorted(ps.isr) == sorted(current)
    h.wait_until(original, timeout=60, interval=0.2,
                 message=f"{topic}-0 back on {sorted(current)} with a full ISR: {c.describe(topic)}")
    assert sorted(read_all(c, topic, 1)) == sorted(values)


# =====================================================================================
# leader-election
# =====================================================================================

@pytest.mark.timeout(240)
def test_preferred_leader_election_moves_leadership_back(cluster_factory, tmp_path):
    c = cluster_factory(3, overrides=NO_AUTO_REBALANCE)
    topic = h.unique_topic("elect")
    c.create_topic(topic, 3, rf=2)
    st = partition_state(c, topic, 0)
    preferred = st.replicas[0]
    assert c.leader_of(topic, 0) == preferred, c.describe(topic)
    led_by_preferred = [p for p in range(3) if partition_state(c, topic, p).replicas[0] == preferred]

    c.sigterm(preferred)
    new = c.wait_new_leader(topic, 0, preferred)
    log(f"{topic}-0: leader {preferred} -> {new}")

    # While the preferred replica is down, the election fails with Kafka's error and a hint.
    p = cli(c, "leader-election", "--election-type", "preferred", "--topic", topic, "--partition", "0",
            check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"Error completing leader election (PREFERRED) for partition: {topic}-0" in p.stdout, p.stdout
    assert "PREFERRED_LEADER_NOT_AVAILABLE" in p.stdout + p.stderr, (p.stdout, p.stderr)
    assert "1 replica(s) could not be elected" in p.stderr and "Hint:" in p.stderr, p.stderr

    c.restart(preferred)
    c.wait_isr_full(topic, range(3), rf=2)
    assert c.leader_of(topic, 0) == new, "leadership must not move back on its own (auto rebalance is off)"

    p = cli(c, "leader-election", "--election-type", "PREFERRED", "--all-topic-partitions")
    assert "Successfully completed leader election (PREFERRED) for partitions" in p.stdout, p.stdout
    elected = p.stdout.split("for partitions", 1)[1].split("\n", 1)[0]
    for part in led_by_preferred:
        assert f"{topic}-{part}" in elected, p.stdout
    for part in led_by_preferred:
        h.wait_until(lambda: c.leader_of(topic, part) == preferred, timeout=30,
                     message=f"{topic}-{part} led by its preferred replica {preferred}: {c.describe(topic)}")
    md = admin_client(c.bootstrap).list_topics(topic, timeout=h.CLIENT_TIMEOUT_S)
    assert md.topics[topic].partitions[0].leader == preferred

    # Nothing left to do: a second run says so, for all partitions or named ones.
    p = cli(c, "leader-election", "--election-type", "preferred", "--all-topic-partitions")
    assert "Successfully completed" not in p.stdout, p.stdout
    assert "Valid replica already elected for all partitions" in p.stdout, p.stdout
    doc = json.loads(cli(c, "leader-election", "--election-type", "preferred", "--topic", topic,
                         "--partition", "0", "--output", "json").stdout)
    assert doc == {"election_type": "PREFERRED", "succeeded": [], "failed": [],
                   "not_needed": [{"topic": topic, "partition": 0}]}, doc
    spec = write_json(tmp_path, "elect.json", {"partitions": [{"topic": topic, "partition": p} for p in range(3)]})
    p = cli(c, "leader-election", "--election-type", "preferred", "--path-to-json-file", spec)
    assert f"Valid replica already elected for partitions {topic}-0, {topic}-1, {topic}-2" in p.stdout, p.stdout

    # An unclean election is not needed where every partition has a leader.
    p = cli(c, "leader-election", "--election-type", "unclean", "--topic", topic)
    assert "Valid replica already elected for partitions" in p.stdout, p.stdout

    # Bad input is refused with a clear message.
    p = cli(c, "leader-election", "--election-type", "sideways", "--all-topic-partitions", check=False)
    assert p.returncode != 0 and "PREFERRED or UNCLEAN" in p.stderr, p.stderr
    p = cli(c, "leader-election", "--election-type", "preferred", check=False)
    assert p.returncode != 0 and "--all-topic-partitions" in p.stderr, p.stderr
    p = cli(c, "leader-election", "--path-to-json-file",
            write_json(tmp_path, "missing.json", {"partitions": [{"topic": topic, "partition": 7}]}), check=False)
    assert p.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in p.stdout + p.stderr, (p.stdout, p.stderr)


@pytest.mark.timeout(240)
def test_automatic_leader_rebalance_returns_leadership_to_the_preferred_replica(cluster_factory):
    """auto.leader.rebalance.enable (Kafka's default): once the preferred
    replica is back in the ISR, the controller moves leadership back on its
    own at the next leader.imbalance.check.interval.seconds."""
    c = cluster_factory(3, overrides={"auto.leader.rebalance.enable": "true",
                                      "leader.imbalance.check.interval.seconds": "2"})
    topic = h.unique_topic("rebalance")
    c.create_topic(topic, 3, rf=3)
    preferred = partition_state(c, topic, 0).replicas[0]
    assert c.leader_of(topic, 0) == preferred, c.describe(topic)
    c.sigterm(preferred)
    new = c.wait_new_leader(topic, 0, preferred)
    log(f"{topic}-0: leader {preferred} -> {new} while {preferred} is down")
    c.restart(preferred)
    c.wait_isr_full(topic, range(3), rf=3)
    t0 = time.monotonic()
    h.wait_until(lambda: c.leader_of(topic, 0) == preferred, timeout=30,
                 message=f"{topic}-0 back on its preferred replica {preferred}: {c.describe(topic)}")
    log(f"{topic}-0: leadership back on {preferred} {time.monotonic() - t0:.1f}s after the ISR was full")


# =====================================================================================
# topics describe --under-replicated-partitions / --unavailable-partitions
# =====================================================================================

def describe_lines(c: Cluster, *args: str) -> tuple[list[str], str]:
    p = cli(c, "topics", "describe", *args)
    return [ln.strip() for ln in p.stdout.splitlines() if ln.strip()], p.stderr


def fields(line: str) -> dict[str, str]:
    # Split at the first ":": an empty last column ("LastKnownElr: ") loses its
    # space to the caller's strip().
    return {k: v.strip() for k, _, v in (f.partition(":") for f in line.split("\t"))}


@pytest.mark.timeout(240)
def test_describe_filters_under_replicated_and_unavailable_partitions(cluster_factory):
    c = cluster_factory(3, overrides=NO_AUTO_REBALANCE)
    topic = h.unique_topic("urp")
    solo = h.unique_topic("urp-rf1")
    c.create_topic(topic, 3, rf=2)
    c.create_topic(solo, 3, rf=1)

    lines, err = describe_lines(c, "--under-replicated-partitions")
    assert lines == [], lines
    assert "under-replicated" not in err and "offline" not in err, err
    assert describe_lines(c, "--unavailable-partitions")[0] == []

    replicas = {p: partition_state(c, topic, p).replicas for p in range(3)}
    down = replicas[0][0]
    on_down = {p for p, r in replicas.items() if down in r}
    solo_on_down = {p for p in range(3) if partition_state(c, solo, p).replicas == [down]}
    assert solo_on_down, f"rf=1 partitions should be spread over all brokers: {c.describe(solo)}"
    c.kill9(down)
    for p in on_down:
        c.wait_isr(topic, p, set(replicas[p]) - {down})

    def offline_now():
        return all(partition_state(c, solo, p).leader < 0 for p in solo_on_down)
    h.wait_until(offline_now, timeout=30, message=f"{solo} partitions on broker {down} offline: {c.describe(solo)}")

    lines, err = describe_lines(c, "--topic", topic, "--under-replicated-partitions")
    rows = [fields(ln) for ln in lines]
    assert {int(r["Partition"]) for r in rows} == on_down, (lines, c.describe(topic))
    assert all(not ln.startswith("Topic: ") or "Partition: " in ln for ln in lines), "no topic summary lines"
    for r in rows:
        assert str(down) not in r["Isr"].split(","), r
        assert str(down) in r["Replicas"].split(","), r
    assert f"{len(on_down)} under-replicated partition(s)" in err, err

    doc = json.loads(cli(c, "topics", "describe", "--topic", topic, "--output", "json").stdout)
    assert doc[0]["under_replicated_partitions"] == len(on_down), doc
    assert doc[0]["offline_partitions"] == 0, doc
    assert len(doc[0]["partitions"]) == 3, "without a filter every partition is listed"

    lines, err = describe_lines(c, "--unavailable-partitions")
    rows = [fields(ln) for ln in lines]
    assert {(r["Topic"], int(r["Partition"])) for r in rows} == {(solo, p) for p in solo_on_down}, lines
    assert all(r["Leader"] == "none" for r in rows), rows
    assert f"{len(on_down)} under-replicated, {len(solo_on_down)} offline partition(s)" in err, err
    doc = {t["topic"]: t for t in json.loads(cli(c, "topics", "describe", "--unavailable-partitions",
                                                 "--output", "json").stdout)}
    assert set(doc) == {solo}, doc
    assert doc[solo]["offline_partitions"] == len(solo_on_down)
    assert {p["partition"] for p in doc[solo]["partitions"]} == solo_on_down, doc

    # Both filters: either condition.
    lines, _ = describe_lines(c, "--under-replicated-partitions", "--unavailable-partitions")
    assert len(lines) == len(on_down) + len(solo_on_down), lines

    # The unfiltered text output is unchanged (summary lines, one line per partition).
    lines, err = describe_lines(c, "--topic", topic)
    assert lines[0].startswith(f"Topic: {topic}\t") and len(lines) == 4, lines

    c.restart(down)
    c.wait_isr_full(topic, range(3), rf=2)
    h.wait_until(lambda: all(partition_state(c, solo, p).leader == down for p in solo_on_down), timeout=30,
                 message=f"{solo} partitions back online: {c.describe(solo)}")
    lines, err = describe_lines(c, "--under-replicated-partitions")
    assert lines == [], lines
    assert describe_lines(c, "--unavailable-partitions")[0] == []
    assert "under-replicated" not in err, err
    doc = {t["topic"]: t for t in json.loads(cli(c, "topics", "describe", "--output", "json").stdout)}
    assert doc[topic]["under_replicated_partitions"] == 0 and doc[topic]["offline_partitions"] == 0, doc
    assert doc[solo]["under_replicated_partitions"] == 0 and doc[solo]["offline_partitions"] == 0, doc
