"""Exactly-once consume-transform-produce on a 3-node cluster across ten kill -9s
of the transaction coordinator and of partition leaders (issue 15's proof).

Three nodes, replication factor 3, min.insync.replicas 2 (also for
``__transaction_state`` and ``__consumer_offsets``), 4 KiB segments so the logs
roll while transactions are open. The application and the checker are in
``eos_app.py``; its module doc says what the application does on errors, and
why it has a watchdog (librdkafka issues #5511 / #5456: a transactional call
can block forever after the broker it cached as the group coordinator was
killed and left the metadata; nothing a broker answers wakes it).

Rounds alternate: even rounds kill the node that coordinates the
application's ``transactional.id`` (asked with FindCoordinator), odd rounds the
leader of an output partition or of an input partition, in turn. The victim is
restarted 2 s later, and the next round waits until every partition of both
topics and of the two internal topics has its full ISR again. Afterwards,
record by record: read_committed reads each input's result exactly once and
in input order, read_uncommitted holds the same records at the same offsets
plus aborted copies only, the group's committed offsets are the input's end,
and ``samsa transactions find-hanging`` finds no hanging transaction on any
broker.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import cluster as cl
import eos_app as eos
import helpers as h
from conftest import samsa_bin

ROUNDS = 10
INPUT_RECORDS = 6000
SEGMENT_BYTES = "4096"
INTERNAL_PARTITIONS = 5
DOWN_S = 2.0


def txn_coordinator(c: cl.Cluster, transactional_id: str) -> int:
    """The serving node every serving node names as ``transactional_id``'s coordinator."""
    def ok():
        found = set()
        for n in c.serving():
            try:
                err, node = cl.find_coordinator_of(n.bootstrap, transactional_id, key_type=1)
            except (OSError, ValueError, TimeoutError):
                return None
            if err != 0:
                return None
            found.add(node)
        if len(found) == 1 and (node := found.pop()) in c.serving_ids():
            return node
        return None
    return h.wait_until(ok, timeout=60, interval=0.1, message=f"the coordinator of {transactional_id}")


def group_coordinator(c: cl.Cluster, group: str) -> int | None:
    """What the first serving node names as ``group``'s coordinator (for the log)."""
    for n in c.serving():
        try:
            err, node = cl.find_coordinator_of(n.bootstrap, group)
        except (OSError, ValueError, TimeoutError):
            continue
        return node if err == 0 else None
    return None


def find_hanging(c: cl.Cluster, broker_id: int) -> list:
    """``samsa transactions find-hanging --broker-id N`` with a 0-minute transaction
    timeout (every open transaction is a candidate, not only old ones)."""
    cmd = [samsa_bin(), "transactions", "find-hanging", "--bootstrap-server", c.bootstrap,
           "--broker-id", str(broker_id), "--max-transaction-timeout", "0", "--output", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)


@pytest.fixture
def cluster_factory(request, tmp_path):
    yield from cl.cluster_fixture(request, tmp_path)


@pytest.mark.timeout(400)
def test_consume_transform_produce_is_exactly_once_across_coordinator_and_leader_kills(cluster_factory):
    c = cluster_factory(3, overrides={"log.segment.bytes": SEGMENT_BYTES,
                                      "transaction.state.log.num.partitions": str(INTERNAL_PARTITIONS),
                                      "transaction.state.log.replication.factor": "3",
                                      "transaction.state.log.min.isr": "2"})
    src, dst, group = h.unique_topic("eos-in"), h.unique_topic("eos-out"), h.unique_topic("eos-group")
    for t in (src, dst):
        c.create_topic(t, eos.INPUT_PARTITIONS)
    inputs = eos.fill_input(c.bootstrap, src, INPUT_RECORDS)
    topics = {src: eos.INPUT_PARTITIONS, dst: eos.INPUT_PARTITIONS}
    victims: list[str] = []

    def crash(rnd: int, app: eos.EosApp) -> str:
        part = (rnd // 2) % eos.INPUT_PARTITIONS
        if rnd % 2 == 0:
            victim = txn_coordinator(c, app.transactional_id)
            what = f"transaction coordinator {victim}"
        else:
            topic = dst if rnd % 4 == 1 else src
            victim = c.leader_of(topic, part)
            what = f"leader {victim} of {'output' if topic == dst else 'input'} {topic}-{part}"
        gc = group_coordinator(c, group)
        what += f" (group coordinator: {gc})"
        victims.append(what)
        c.kill9(victim)
        time.sleep(DOWN_S)
        c.restart(victim)
        for t, n in topics.items():
            c.wait_isr_full(t, range(n))
        # The internal topics exist once the application used them.
        for t in ("__transaction_state", "__consumer_offsets"):
            c.wait_isr_full(t, range(INTERNAL_PARTITIONS))
        return what

    app = eos.EosApp(c.bootstrap, src, dst, group, eos.INPUT_PARTITIONS).start()
    t0 = time.monotonic()
    try:
        eos.run_through_crashes(app, ROUNDS, crash, "3-node cluster")
        eos.wait_caught_up(app, lambda: c.bootstrap, inputs)
    finally:
        app.stop()
        print("\n" + app.summary("3-node cluster") + f"; {time.monotonic() - t0:.0f}s")
        print("victims:\n  " + "\n  ".join(victims))
    assert len(victims) == ROUNDS
    eos.check_output(c.bootstrap, inputs, dst, "3-node cluster")
    for n in c.ids:
        hanging = find_hanging(c, n)
        assert hanging == [], f"find-hanging --broker-id {n}: {hanging}"
