"""The `samsa` CLI (topics, produce, consume, groups, configs, perf) run as a
subprocess against a real broker, cross-checked with confluent-kafka
(librdkafka), a different client, so that a bug cannot hide by being symmetric.
"""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

import helpers as h
from conftest import samsa_bin

CLI_TIMEOUT_S = 60


def cli(broker, *args, stdin: str | bytes | None = None, check: bool = True,
        timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Runs `samsa ARGS --bootstrap-server BROKER`; returns the completed process
    (stdout/stderr as bytes)."""
    cmd = [samsa_bin(), *args, "--bootstrap-server", broker.bootstrap]
    data = stdin.encode() if isinstance(stdin, str) else stdin
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout!r}\nstderr: {p.stderr!r}")
    return p


def out(p: subprocess.CompletedProcess) -> str:
    return p.stdout.decode()


def err(p: subprocess.CompletedProcess) -> str:
    return p.stderr.decode()


def group_consumer(broker, group: str, **conf) -> Consumer:
    c = h.base_conf(broker.bootstrap)
    c.update({"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "fetch.wait.max.ms": 100, "session.timeout.ms": 10000})
    c.update(conf)
    return Consumer(c)


# ---------------------------------------------------------------- the article

def test_article_commands_on_one_node(broker):
    p = cli(broker, "topics", "create", "user-events", "--partitions", "3", "--replication-factor", "1")
    assert "Created topic user-events" in out(p)

    # Replication factor 3 needs three brokers; one node must say so clearly.
    p = cli(broker, "topics", "create", "user-events-rf3", "--partitions", "3",
            "--replication-factor", "3", check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    e = err(p)
    assert "INVALID_REPLICATION_FACTOR" in e, e
    assert "number of brokers in the cluster (1)" in e, e
    assert "--replication-factor 1" in e, e

    cli(broker, "produce", "user-events", stdin="hello world\n")
    p = cli(broker, "consume", "user-events", "--from-beginning", "--max-messages", "1")
    assert out(p) == "hello world\n"


# ---------------------------------------------------------------- topics

def test_created_topic_is_seen_by_confluent_with_its_partitions(broker):
    t = h.unique_topic("cli-create")
    cli(broker, "topics", "create", t, "--partitions", "5", "--replication-factor", "1",
        "--config", "retention.ms=3600000")
    a = h.admin(broker.bootstrap)
    h.wait_until(lambda: h.topic_partitions(a, t) == 5, message=f"{t} with 5 partitions")
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    configs = a.describe_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)
    assert configs["retention.ms"].value == "3600000"

    listed = out(cli(broker, "topics", "list")).split()
    assert t in listed
    as_json = json.loads(out(cli(broker, "topics", "list", "--output", "json")))
    assert t in as_json


def test_topic_already_exists_names_the_error_and_the_next_step(broker):
    t = h.unique_topic("cli-dup")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    p = cli(broker, "topics", "create", t, "--partitions", "1", "--replication-factor", "1", check=False)
    assert p.returncode == 1
    assert "TOPIC_ALREADY_EXISTS" in err(p)
    assert f"samsa topics describe {t}" in err(p)
    # --if-not-exists makes it a no-op.
    cli(broker, "topics", "create", t, "--partitions", "1", "--if-not-exists")


def test_topics_describe_shows_partitions_leader_isr_and_overrides(broker):
    t = h.unique_topic("cli-describe")
    a = h.admin(broker.bootstrap)
    h.create_topic(a, t, partitions=3, config={"retention.ms": "123456"})
    text = out(cli(broker, "topics", "describe", t))
    lines = text.splitlines()
    assert lines[0].startswith(f"Topic: {t}\t"), text
    assert "PartitionCount: 3" in lines[0]
    assert "ReplicationFactor: 1" in lines[0]
    assert "retention.ms=123456" in lines[0], "non-default configs are listed"
    assert "segment.bytes" not in lines[0], "defaults are not"
    parts = [ln.strip("\n") for ln in lines[1:]]
    # kafka-topics.sh's columns; Elr/LastKnownElr come from DescribeTopicPartitions
    # (empty lists: samsa has no eligible leader replicas).
    assert parts == [f"\tTopic: {t}\tPartition: {i}\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: "
                     for i in range(3)], text

    doc = json.loads(out(cli(broker, "topics", "describe", "--topic", t, "--output", "json")))
    assert doc[0]["partition_count"] == 3
    assert [p["leader"] for p in doc[0]["partitions"]] == [1, 1, 1]
    assert doc[0]["configs"]["retention.ms"] == "123456"
    assert [(p["elr"], p["last_known_elr"]) for p in doc[0]["partitions"]] == [([], [])] * 3


def describe_lines(text: str) -> tuple[list[str], list[tuple[str, int]]]:
    """`topics describe` text: the topic lines' names and every partition line's
    (topic, partition), in order."""
    topics, parts = [], []
    for ln in text.splitlines():
        cols = dict(c.split(": ", 1) for c in ln.strip("\t").split("\t") if ": " in c)
        if ln.startswith("Topic: "):
            topics.append(cols["Topic"])
        elif ln.startswith("\tTopic: "):
            assert "Elr" in cols and "LastKnownElr" in cols, ln
            parts.append((cols["Topic"], int(cols["Partition"])))
    return topics, parts


def test_topics_describe_pages_with_describe_topic_partitions(broker_factory):
    """`topics describe` asks DescribeTopicPartitions (as kafka-topics.sh since
    3.8) page after page: the broker caps a page at 7 partitions, so 60
    partitions over two topics take many pages, each partition printed once."""
    b = broker_factory("max.request.partition.size.limit=7")
    big, small = h.unique_topic("cli-page-b"), h.unique_topic("cli-page-s")
    a = h.admin(b.bootstrap)
    h.create_topic(a, big, partitions=57)
    h.create_topic(a, small, partitions=3)
    want = [(big, i) for i in range(57)]
    topics, parts = describe_lines(out(cli(b, "topics", "describe", big)))
    assert topics == [big] and parts == want
    assert "PartitionCount: 57" in out(cli(b, "topics", "describe", big)).splitlines()[0]

    # Every topic: both complete, in name order (the pages cross the topic boundary).
    topics, parts = describe_lines(out(cli(b, "topics", "describe")))
    both = sorted([big, small])
    assert topics == both, topics
    assert [p for p in parts if p[0] in both] == sorted(want + [(small, i) for i in range(3)])

    # A client page size below the broker's cap (kafka-topics.sh's flag).
    doc = json.loads(out(cli(b, "topics", "describe", big, "--partition-size-limit-per-response", "2",
                             "--output", "json")))
    assert [p["partition"] for p in doc[0]["partitions"]] == list(range(57))
    assert doc[0]["partition_count"] == 57


def test_describe_and_delete_of_a_missing_topic_fail_with_advice(broker):
    p = cli(broker, "topics", "describe", "no-such-topic", check=False)
    assert p.returncode == 1
    assert "UNKNOWN_TOPIC_OR_PARTITION" in err(p) and "samsa topics create" in err(p)
    p = cli(broker, "topics", "delete", "no-such-topic", check=False)
    assert p.returncode == 1
    assert "UNKNOWN_TOPIC_OR_PARTITION" in err(p)
    cli(broker, "topics", "delete", "no-such-topic", "--if-exists")


def test_alter_adds_partitions_and_delete_removes_the_topic(broker):
    t = h.unique_topic("cli-alter")
    a = h.admin(broker.bootstrap)
    h.create_topic(a, t, partitions=1)
    cli(broker, "topics", "alter", t, "--partitions", "4")
    h.wait_until(lambda: h.topic_partitions(a, t) == 4, message="4 partitions")
    p = cli(broker, "topics", "alter", t, "--partitions", "2", check=False)
    assert p.returncode == 1 and "INVALID_PARTITIONS" in err(p), err(p)
    cli(broker, "topics", "delete", t)
    h.wait_until(lambda: h.topic_partitions(a, t) is None, message=f"{t} deleted")


# ---------------------------------------------------------------- produce

def test_lines_with_keys_and_headers_are_read_back_exactly_by_confluent(broker):
    t = h.unique_topic("cli-produce")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=3)
    lines = [f"user-{i % 7}:event {i} with ünïcode and a : colon" for i in range(200)]
    cli(broker, "produce", t, "--key-separator", ":", "--header", "source=cli", "--header", "run=42",
        stdin="\n".join(lines) + "\n")
    got = h.consume_partitions(broker.bootstrap, t, [0, 1, 2])
    records = [r for p in sorted(got) for r in got[p]]
    assert len(records) == 200
    by_value = {r.value.decode(): r for r in records}
    for line in lines:
        key, value = line.split(":", 1)
        r = by_value[value]
        assert r.key == key.encode()
        assert r.headers == [("source", b"cli"), ("run", b"42")]
    # Order is kept within a partition.
    for p, recs in got.items():
        values = [r.value.decode() for r in recs]
        assert values == [ln.split(":", 1)[1] for ln in lines if ln.split(":", 1)[1] in set(values)]


def test_keyed_records_land_where_the_java_partitioner_puts_them(broker):
    """librdkafka's murmur2_random partitioner is the Java client's default
    partitioner; samsa's producer must agree with it for every key."""
    t_cli = h.unique_topic("cli-part")
    t_ref = h.unique_topic("ref-part")
    a = h.admin(broker.bootstrap)
    h.create_topic(a, t_cli, partitions=7)
    h.create_topic(a, t_ref, partitions=7)
    keys = [f"key-{i}" for i in range(100)] + ["21", "foobar", "a"]
    cli(broker, "produce", t_cli, "--key-separator", "\t", stdin="".join(f"{k}\tv\n" for k in keys))
    p = h.producer(broker.bootstrap, partitioner="murmur2_random")
    log = h.produce_and_flush(p, [dict(key=k.encode(), value=b"v") for k in keys], t_ref)
    want = {d.key.decode(): d.partition for d in log.ok}
    got = h.consume_partitions(broker.bootstrap, t_cli, list(range(7)))
    have = {r.key.decode(): p for p, recs in got.items() for r in recs}
    assert have == want


def test_produce_with_every_codec_and_acks(broker):
    t = h.unique_topic("cli-codecs")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    expected = []
    for codec, acks in [("none", "all"), ("gzip", "1"), ("snappy", "-1"), ("lz4", "all"), ("zstd", "1")]:
        lines = [f"{codec} line {i} " + "x" * (i % 50) for i in range(50)]
        expected += lines
        cli(broker, "produce", t, "--compression", codec, "--acks", acks, stdin="\n".join(lines) + "\n")
    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [r.value.decode() for r in got] == expected


def test_produce_to_a_missing_topic_fails_with_the_error_name(broker_factory):
    b = broker_factory("auto.create.topics.enable=false")
    p = cli(b, "produce", "missing-topic", stdin="x\n", check=False)
    assert p.returncode == 1
    assert "UNKNOWN_TOPIC_OR_PARTITION" in err(p), err(p)
    assert "samsa topics create missing-topic" in err(p), err(p)


def test_acks_zero_and_json_offsets(broker):
    t = h.unique_topic("cli-acks0")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    p = cli(broker, "produce", t, "--output", "json", stdin="a\nb\nc\n")
    offsets = [json.loads(ln)["offset"] for ln in out(p).splitlines()]
    assert offsets == [0, 1, 2]
    cli(broker, "produce", t, "--acks", "0", stdin="d\ne\n")
    h.wait_until(lambda: h.watermarks(broker.bootstrap, t)[1] == 5, message="acks=0 records stored")


# ---------------------------------------------------------------- consume

def test_records_from_confluent_are_printed_exactly(broker):
    t = h.unique_topic("cli-consume")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=3)
    items = [dict(key=f"k{i}".encode(), value=f"value {i}".encode(), partition=i % 3,
                  headers=[("n", str(i).encode())], timestamp=1_700_000_000_000 + i) for i in range(90)]
    log = h.produce_and_flush(h.producer(broker.bootstrap, compression_type="lz4"), items, t)
    assert not log.errors
    p = cli(broker, "consume", t, "--from-beginning", "--max-messages", "90",
            "--format", "%p|%o|%k|%s|%h|%T\\n")
    lines = out(p).splitlines()
    assert len(lines) == 90
    # Delivery reports carry no headers: take them from the produced items.
    want = {f"{d.partition}|{d.offset}|{d.key.decode()}|{d.value.decode()}|n={d.key.decode()[1:]}|{d.timestamp}"
            for d in log.ok}
    assert set(lines) == want
    assert "Processed a total of 90 messages" in err(p)


def test_console_consumer_flags_and_partition_offsets(broker):
    t = h.unique_topic("cli-flags")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=2)
    items = [dict(key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0) for i in range(5)]
    h.produce_and_flush(h.producer(broker.bootstrap), items, t)
    p = cli(broker, "consume", t, "--partition", "0", "--offset", "3", "--max-messages", "2",
            "--print-key", "--print-offset", "--print-partition")
    assert out(p) == "Partition:0\tOffset:3\tk3\tv3\nPartition:0\tOffset:4\tk4\tv4\n"
    p = cli(broker, "consume", t, "--partition", "0", "--offset", "earliest", "--max-messages", "1",
            "--output", "json")
    doc = json.loads(out(p))
    assert (doc["key"], doc["value"], doc["offset"], doc["partition"]) == ("k0", "v0", 0, 0)


def test_consume_exits_after_timeout_without_data(broker):
    t = h.unique_topic("cli-idle")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    start = time.monotonic()
    p = cli(broker, "consume", t, "--from-beginning", "--timeout-ms", "1500",
            "--isolation-level", "read_committed")
    assert out(p) == ""
    assert "Processed a total of 0 messages" in err(p)
    assert time.monotonic() - start < 15


def test_consume_of_a_missing_topic_fails_with_advice(broker_factory):
    b = broker_factory("auto.create.topics.enable=false")
    p = cli(b, "consume", "nope", "--from-beginning", "--max-messages", "1", check=False)
    assert p.returncode == 1
    assert "UNKNOWN_TOPIC_OR_PARTITION" in err(p), err(p)


# ---------------------------------------------------------------- groups

def test_group_consume_commits_what_it_printed(broker):
    t = h.unique_topic("cli-group")
    g = h.unique_topic("grp")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=2)
    items = [dict(value=f"m{i}".encode(), partition=i % 2) for i in range(10)]
    h.produce_and_flush(h.producer(broker.bootstrap), items, t)
    p = cli(broker, "consume", t, "--group", g, "--from-beginning", "--max-messages", "10")
    assert sorted(out(p).split()) == sorted(f"m{i}" for i in range(10))
    # confluent-kafka sees the commits.
    c = group_consumer(broker, g)
    try:
        committed = c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=h.CLIENT_TIMEOUT_S)
    finally:
        c.close()
    assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 5), (1, 5)]
    # Only what was printed is committed, even when a fetch returned more.
    g2 = h.unique_topic("grp")
    p = cli(broker, "consume", t, "--group", g2, "--from-beginning", "--max-messages", "3")
    assert len(out(p).split()) == 3
    c = group_consumer(broker, g2)
    try:
        committed = c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=h.CLIENT_TIMEOUT_S)
    finally:
        c.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 3, committed
    # A second run of the same group starts after the committed offsets.
    h.produce_and_flush(h.producer(broker.bootstrap), [dict(value=b"later", partition=1)], t)
    p = cli(broker, "consume", t, "--group", g, "--max-messages", "1")
    assert out(p) == "later\n"


def test_groups_list_describe_reset_and_delete(broker):
    t = h.unique_topic("cli-groups")
    g = h.unique_topic("grp")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=2)
    items = [dict(value=f"m{i}".encode(), partition=i % 2) for i in range(20)]
    h.produce_and_flush(h.producer(broker.bootstrap), items, t)
    # confluent-kafka commits offsets 3 and 4 for group g, then stays active.
    c = group_consumer(broker, g, **{"client.id": "lib-consumer"})
    c.subscribe([t])
    h.wait_until(lambda: (c.poll(0.2), len(c.assignment()) == 2)[1], message="assignment")
    c.commit(offsets=[TopicPartition(t, 0, 3), TopicPartition(t, 1, 4)], asynchronous=False)

    assert g in out(cli(broker, "groups", "list")).split()
    text = out(cli(broker, "groups", "describe", g))
    header = next(ln for ln in text.splitlines() if ln.startswith("GROUP"))
    assert header.split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                              "CONSUMER-ID", "HOST", "CLIENT-ID"]
    rows = [ln.split() for ln in text.splitlines() if ln.startswith(g)]
    assert [r[:6] for r in rows] == [[g, t, "0", "3", "10", "7"], [g, t, "1", "4", "10", "6"]], text
    assert all(r[8] == "lib-consumer" for r in rows), text

    # Active members: --execute is refused; a dry run only prints the plan.
    p = cli(broker, "groups", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute", check=False)
    assert p.returncode == 1 and "inactive" in err(p)
    c.close()

    plan = out(cli(broker, "groups", "reset-offsets", g, "--topic", t, "--to-earliest"))
    assert [ln.split() for ln in plan.splitlines() if ln.startswith(g)] == [[g, t, "0", "0"], [g, t, "1", "0"]]
    probe = group_consumer(broker, g)
    try:
        committed = probe.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=h.CLIENT_TIMEOUT_S)
        assert sorted(tp.offset for tp in committed) == [3, 4], "a dry run changes nothing"
    finally:
        probe.close()

    cli(broker, "groups", "reset-offsets", g, "--topic", f"{t}:1", "--shift-by", "-2", "--execute")
    cli(broker, "groups", "reset-offsets", g, "--topic", f"{t}:0", "--to-offset", "8", "--execute")
    probe = group_consumer(broker, g)
    try:
        committed = probe.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=h.CLIENT_TIMEOUT_S)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 8), (1, 2)]
    finally:
        probe.close()
    cli(broker, "groups", "reset-offsets", g, "--topic", t, "--to-latest", "--execute")
    doc = json.loads(out(cli(broker, "groups", "describe", g, "--output", "json")))
    assert [(p["partition"], p["current_offset"], p["lag"]) for p in doc["partitions"]] == [(0, 10, 0), (1, 10, 0)]

    assert "successful" in out(cli(broker, "groups", "delete", g))
    assert g not in out(cli(broker, "groups", "list")).split()


def test_reset_offsets_to_datetime(broker):
    t = h.unique_topic("cli-datetime")
    g = h.unique_topic("grp")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    base = 1_700_000_000_000  # 2023-11-14T22:13:20Z
    items = [dict(value=f"m{i}".encode(), timestamp=base + i * 60_000) for i in range(10)]
    h.produce_and_flush(h.producer(broker.bootstrap), items, t)
    cli(broker, "groups", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute")
    # 22:16:00Z is between the records at +2 min (22:15:20) and +3 min (22:16:20).
    cli(broker, "groups", "reset-offsets", g, "--topic", t, "--to-datetime", "2023-11-14T22:16:00Z", "--execute")
    doc = json.loads(out(cli(broker, "groups", "describe", g, "--output", "json")))
    assert doc["partitions"][0]["current_offset"] == 3


def test_groups_describe_a_consumer_protocol_group(broker):
    """A KIP-848 group (confluent-kafka, group.protocol=consumer) is not a classic
    group: DescribeGroups answers GROUP_ID_NOT_FOUND for it, so the tool must ask
    ConsumerGroupDescribe (as kafka-consumer-groups.sh does) and show its epochs,
    current and target assignments."""
    t = h.unique_topic("cli-kip848")
    g = h.unique_topic("grp848")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=3)
    h.produce_and_flush(h.producer(broker.bootstrap), [dict(value=b"v", partition=i) for i in range(3)], t)
    conf = h.base_conf(broker.bootstrap)
    conf.update({"group.id": g, "group.protocol": "consumer", "enable.auto.commit": False,
                 "auto.offset.reset": "earliest", "client.id": "kip848-consumer"})
    c = Consumer(conf)
    try:
        c.subscribe([t])
        h.wait_until(lambda: (c.poll(0.2), len(c.assignment()) == 3)[1], timeout=30, message="assignment")
        c.commit(offsets=[TopicPartition(t, 1, 1)], asynchronous=False)

        text = out(cli(broker, "groups", "describe", g))
        rows = [ln.split() for ln in text.splitlines() if ln.startswith(g)]
        assert sorted((r[2], r[3]) for r in rows) == [("0", "-"), ("1", "1"), ("2", "-")], text
        assert all(r[8] == "kip848-consumer" for r in rows), text

        text = out(cli(broker, "groups", "describe", g, "--members", "--verbose"))
        header = next(ln for ln in text.splitlines() if ln.startswith("GROUP"))
        assert header.split() == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "CURRENT-EPOCH",
                                  "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT"], text
        [row] = [ln.split() for ln in text.splitlines() if ln.startswith(g)]
        assert row[4] == "3" and row[6] == row[8] == f"{t}:0,1,2", text
        assert int(row[5]) >= 1 and int(row[7]) >= 1, text

        text = out(cli(broker, "groups", "describe", g, "--state", "--verbose"))
        header = next(ln for ln in text.splitlines() if ln.startswith("GROUP"))
        assert "GROUP-EPOCH" in header and "TARGET-ASSIGNMENT-EPOCH" in header, text
        doc = json.loads(out(cli(broker, "groups", "describe", g, "--state", "--output", "json")))
        assert doc["state"] == "Stable" and doc["members"] == 1 and doc["group_epoch"] >= 1, doc

        doc = json.loads(out(cli(broker, "groups", "describe", g, "--members", "--output", "json")))
        [m] = doc["members"]
        assert m["subscribed_topic_names"] == [t] and m["assignment"] == {t: [0, 1, 2]}, doc
    finally:
        c.close()


def test_describe_of_an_unknown_group_fails(broker):
    p = cli(broker, "groups", "describe", "no-such-group", check=False)
    assert p.returncode == 1
    assert "GROUP_ID_NOT_FOUND" in err(p) or "does not exist" in err(p), err(p)


# ---------------------------------------------------------------- configs

def test_configs_describe_shows_retention_ms(broker):
    t = h.unique_topic("cli-configs")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    text = out(cli(broker, "configs", "describe", "--topic", t))
    row = next(ln.split() for ln in text.splitlines() if ln.startswith("retention.ms "))
    assert row == ["retention.ms", "604800000", "DEFAULT_CONFIG"], text
    assert out(cli(broker, "configs", "describe", "--topic", t, "--overrides-only")).count("\n") == 2  # title + header


def test_configs_alter_is_seen_by_confluent(broker):
    t = h.unique_topic("cli-alter-configs")
    a = h.admin(broker.bootstrap)
    h.create_topic(a, t, partitions=1)
    cli(broker, "configs", "alter", "--topic", t, "--add-config", "retention.ms=1000,cleanup.policy=[compact,delete]")
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    configs = a.describe_configs([res])[res].result(timeout=h.CLIENT_TIMEOUT_S)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "compact,delete"
    cli(broker, "configs", "alter", "--entity-type", "topics", "--entity-name", t, "--delete-config", "retention.ms")
    doc = json.loads(out(cli(broker, "configs", "describe", "--topic", t, "--output", "json")))
    by_name = {c["name"]: c for c in doc}
    assert by_name["retention.ms"]["source"] == "DEFAULT_CONFIG"
    assert by_name["cleanup.policy"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    p = cli(broker, "configs", "alter", "--topic", t, "--add-config", "retention.ms=soon", check=False)
    assert p.returncode == 1 and "INVALID_CONFIG" in err(p), err(p)


def test_broker_configs_describe(broker):
    text = out(cli(broker, "configs", "describe", "--broker", "1"))
    assert any(ln.startswith("num.partitions ") for ln in text.splitlines()), text


# ---------------------------------------------------------------- perf

def test_perf_produce_and_consume_report_throughput_and_latency(broker):
    t = h.unique_topic("cli-perf")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=2)
    p = cli(broker, "perf", "produce", "--topic", t, "--num-records", "5000", "--record-size", "100",
            "--throughput", "-1", "--acks", "all")
    line = out(p).strip()
    assert line.startswith("5000 records sent, "), line
    for word in ("records/sec", "MB/sec", "avg", "p50", "p95", "p99", "p99.9", "max"):
        assert word in line, line
    lo, hi = h.watermarks(broker.bootstrap, t, 0)
    lo1, hi1 = h.watermarks(broker.bootstrap, t, 1)
    assert (hi - lo) + (hi1 - lo1) == 5000
    doc = json.loads(out(cli(broker, "perf", "consume", "--topic", t, "--messages", "5000", "--output", "json")))
    assert doc["records"] == 5000 and doc["bytes"] == 500_000


def test_perf_throughput_limit(broker):
    t = h.unique_topic("cli-perf-rate")
    h.create_topic(h.admin(broker.bootstrap), t, partitions=1)
    start = time.monotonic()
    doc = json.loads(out(cli(broker, "perf", "produce", "--topic", t, "--num-records", "300",
                             "--record-size", "10", "--throughput", "200", "--output", "json")))
    assert doc["records"] == 300
    assert time.monotonic() - start >= 1.3, "300 records at 200/s take about 1.5 s"


# ---------------------------------------------------------------- misc

def test_help_and_completions():
    for args in (["--help"], ["topics", "--help"], ["consume", "--help"], ["groups", "reset-offsets", "--help"],
                 ["perf", "produce", "--help"]):
        p = subprocess.run([samsa_bin(), *args], capture_output=True, timeout=CLI_TIMEOUT_S)
        assert p.returncode == 0 and b"Usage:" in p.stdout, args
    p = subprocess.run([samsa_bin(), "completions", "bash"], capture_output=True, timeout=CLI_TIMEOUT_S)
    assert p.returncode == 0 and b"samsa" in p.stdout and b"complete" in p.stdout


def test_unreachable_broker_is_reported(tmp_path):
    from conftest import free_port
    port = free_port()
    p = subprocess.run([samsa_bin(), "topics", "list", "--bootstrap-server", f"127.0.0.1:{port}"],
                       capture_output=True, timeout=CLI_TIMEOUT_S)
    assert p.returncode == 1
    assert b"no broker is listening" in p.stderr, p.stderr
