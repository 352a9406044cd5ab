"""`samsa transactions` (kafka-transactions.sh) against real confluent-kafka
transactional producers: `list` and `describe --transactional-id` show an
ongoing transaction with its partitions and then its completed state (text
and `--output json`), `describe-producers` shows the open transaction's start
offset, and `find-hanging` finds nothing while the coordinator knows the
transaction."""

from __future__ import annotations

import json
import subprocess
import uuid

from confluent_kafka import Producer

import helpers as h
from conftest import samsa_bin

CLI_TIMEOUT_S = 60


def txn(broker, *args: str) -> subprocess.CompletedProcess:
    cmd = [samsa_bin(), "transactions", *args, "--bootstrap-server", broker.bootstrap]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p


def txn_json(broker, *args: str) -> list[dict]:
    return json.loads(txn(broker, *args, "--output", "json").stdout)


def table(text: str) -> list[list[str]]:
    """An aligned table (two or more spaces between columns) as rows of cells."""
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in text.splitlines() if line.strip()]


def transactional_producer(broker, tid: str) -> Producer:
    p = h.producer(broker.bootstrap, **{"transactional.id": tid, "transaction.timeout.ms": 60000})
    p.init_transactions(h.CLIENT_TIMEOUT_S)
    return p


def listed(broker, tid: str) -> dict | None:
    return next((r for r in txn_json(broker, "list") if r["TransactionalId"] == tid), None)


def test_list_and_describe_show_ongoing_then_completed_transactions(broker):
    topic = h.unique_topic("txn-cli")
    h.create_topic(h.admin(broker.bootstrap), topic, partitions=2)
    committed, aborted = f"txc-{uuid.uuid4().hex[:8]}", f"txa-{uuid.uuid4().hex[:8]}"

    p = transactional_producer(broker, committed)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    p.flush(h.CLIENT_TIMEOUT_S)

    # Ongoing: listed with its producer id, described with both partitions.
    row = h.wait_until(lambda: (r := listed(broker, committed)) and r["TransactionState"] == "Ongoing" and r,
                       message=f"{committed} listed as Ongoing")
    assert int(row["ProducerId"]) >= 0 and int(row["Coordinator"]) == 1, row
    [d] = txn_json(broker, "describe", "--transactional-id", committed)
    assert d["TransactionalId"] == committed and d["TransactionState"] == "Ongoing", d
    assert d["ProducerId"] == row["ProducerId"] and d["CoordinatorId"] == "1", d
    assert d["TransactionTimeoutMs"] == "60000", d
    assert sorted(d["TopicPartitions"].split(",")) == [f"{topic}-0", f"{topic}-1"], d
    assert int(d["CurrentTransactionStartTimeMs"]) > 0 and int(d["TransactionDurationMs"]) >= 0, d

    # The text forms: kafka-transactions.sh's columns.
    rows = table(txn(broker, "list").stdout)
    assert rows[0] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"], rows
    assert [committed, "1", row["ProducerId"], "Ongoing"] in rows[1:], rows
    rows = table(txn(broker, "describe", "--transactional-id", committed).stdout)
    assert rows[0] == ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                       "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                       "TopicPartitions"], rows
    assert rows[1][1] == committed and rows[1][4] == "Ongoing", rows

    # Each partition's leader knows the open transaction and where it starts.
    [prod] = [r for r in txn_json(broker, "describe-producers", "--topic", topic, "--partition", "0")
              if r["ProducerId"] == row["ProducerId"]]
    assert prod["CurrentTransactionStartOffset"] == "0", prod
    # Its coordinator knows it: not hanging.
    assert txn_json(broker, "find-hanging", "--topic", topic) == []

    p.commit_transaction(h.CLIENT_TIMEOUT_S)
    [d] = txn_json(broker, "describe", "--transactional-id", committed)
    assert d["TransactionState"] == "CompleteCommit", d
    assert d["TopicPartitions"] == "", d
    assert listed(broker, committed)["TransactionState"] == "CompleteCommit"

    q = transactional_producer(broker, aborted)
    q.begin_transaction()
    q.produce(topic, value=b"gone", partition=1)
    q.flush(h.CLIENT_TIMEOUT_S)
    assert listed(broker, aborted)["TransactionState"] == "Ongoing"
    q.abort_transaction(h.CLIENT_TIMEOUT_S)
    [d] = txn_json(broker, "describe", "--transactional-id", aborted)
    assert d["TransactionState"] == "CompleteAbort" and d["TopicPartitions"] == "", d
    states = {r["TransactionalId"]: r["TransactionState"] for r in txn_json(broker, "list")}
    assert states[committed] == "CompleteCommit" and states[aborted] == "CompleteAbort", states

    # An unknown id: Kafka's error.
    cmd = [samsa_bin(), "transactions", "describe", "--transactional-id", "no-such-txn",
           "--bootstrap-server", broker.bootstrap]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert r.returncode != 0 and "TRANSACTIONAL_ID_NOT_FOUND" in r.stderr, (r.stdout, r.stderr)
