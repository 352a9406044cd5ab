"""Exactly-once consume-transform-produce across crashes (issue 15's proof).

An application reads an input topic in a consumer group and, for every input
record ``v``, writes ``out-v`` to an output topic inside a transaction that
also commits the group's consumed offsets (``send_offsets_to_transaction``),
the loop Kafka's exactly-once semantics are built for. While it runs, the
broker (single node) or the transaction coordinator and partition leaders
(3-node cluster) are killed with SIGKILL ten times. Afterwards a
``read_committed`` consumer must find every input's output exactly once, and
the group's committed offsets must be the input's end offsets.

The application does what the clients document for errors: any failure aborts
the open transaction if it can and starts over with a new producer (same
``transactional.id``: ``init_transactions`` fences the old one and finishes
whatever it left) and a consumer positioned at the committed offsets
(librdkafka asks for stable offsets, KIP-447, so a commit still in flight is
waited for rather than read half-done).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import cluster as cl
import helpers as h

ROUNDS = 10
INPUT_PARTITIONS = 3
INPUT_RECORDS = 12000
# Input records per transaction (at most): 12000 / 20 = 600 transactions, so
# every crash round lands among committed ones.
TXN_RECORDS_MAX = 20
# Small segments (a broker default: topic-level segment.bytes has a 1 MiB
# minimum) so the logs roll while transactions are open.
SEGMENT_BYTES = "4096"


class EosApp:
    """The consume-transform-produce loop in a thread (see the module doc)."""

    def __init__(self, bootstrap: str, src: str, dst: str, group: str, partitions: int):
        self.bootstrap, self.src, self.dst, self.group = bootstrap, src, dst, group
        self.partitions = partitions
        self.transactional_id = f"eos-{group}"
        self.stop_ev = threading.Event()
        self.commits = 0
        self.sessions = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "EosApp":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(timeout=90)
        assert not self.thread.is_alive(), "the application did not stop"

    def _conf(self) -> dict:
        # librdkafka 2.16 re-bootstraps when every broker is down (a single
        # node killed): it replaces its broker handles, and a producer whose
        # cached group coordinator still names the old handle then waits in
        # send_offsets_to_transaction() forever, past its own timeout (seen
        # with debug=eos: AddOffsetsToTxn answered, no TxnOffsetCommit ever
        # sent; librdkafka issues #5511 and #5456). That is client state, not
        # broker behaviour; "none" keeps the broker handles and the
        # application recovers as documented.
        return {**cl.client_conf(self.bootstrap), "metadata.recovery.strategy": "none"}

    def _run(self) -> None:
        while not self.stop_ev.is_set():
            try:
                self._session()
            except Exception as e:  # noqa: BLE001 -- every failure starts a new session
                self.errors.append(repr(e))
                cl.log(f"eos app: session {self.sessions} ended: {e!r}")
                time.sleep(0.3)

    def _session(self) -> None:
        self.sessions += 1
        p = Producer({**self._conf(), "transactional.id": self.transactional_id,
                      "transaction.timeout.ms": 20000, "message.timeout.ms": 15000})
        c = None
        in_txn = False
        try:
            p.init_transactions(30)
            c = Consumer({**self._conf(), "group.id": self.group, "isolation.level": "read_committed",
                          "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            tps = [TopicPartition(self.src, i) for i in range(self.partitions)]
            committed = c.committed(tps, timeout=30)
            c.assign([TopicPartition(self.src, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                      for tp in committed])
            while not self.stop_ev.is_set():
                msgs = [m for m in c.consume(num_messages=TXN_RECORDS_MAX, timeout=0.3) if m.error() is None]
                if not msgs:
                    continue
                p.begin_transaction()
                in_txn = True
                for m in msgs:
                    p.produce(self.dst, value=b"out-" + m.value(), partition=m.partition())
                p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
                p.commit_transaction(30)
                in_txn = False
                self.commits += 1
        finally:
            if in_txn:
                try:
                    p.abort_transaction(10)
                except Exception:  # noqa: BLE001 -- the next session's init_transactions finishes it
                    pass
            if c is not None:
                c.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int] | None:
    c = Consumer({**h.base_conf(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, i) for i in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    except Exception:  # noqa: BLE001 -- the coordinator may be moving
        return None
    finally:
        c.close()


def drain(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    """Every record of ``topic`` (up to its end at the time of the call) as
    ``isolation`` reads it."""
    c = Consumer({**h.base_conf(bootstrap), "group.id": f"drain-{topic}", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
        values: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + 90
        while eof != set(range(partitions)):
            assert time.monotonic() < deadline, f"draining {topic}: end of partitions {eof} only"
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                    continue
                eof.discard(m.partition())
                values.append(m.value())
        return values
    finally:
        c.close()


def run_and_check(bootstrap_fn, make_topic, crash, label: str) -> None:
    """Fill the input, run the application through ROUNDS crashes, check the output."""
    src, dst = h.unique_topic("eos-in"), h.unique_topic("eos-out")
    group = h.unique_topic("eos-group")
    make_topic(src)
    make_topic(dst)
    inputs = [f"{i}".encode() for i in range(INPUT_RECORDS)]
    out = h.produce_and_flush(h.producer(bootstrap_fn(), acks="all"),
                              [dict(value=v, partition=i % INPUT_PARTITIONS) for i, v in enumerate(inputs)], src)
    assert not out.errors, out.errors[:3]

    app = EosApp(bootstrap_fn(), src, dst, group, INPUT_PARTITIONS).start()
    rng = random.Random(15)
    try:
        for rnd in range(ROUNDS):
            # Crash only once the application committed again since the last
            # crash (so each round hits a running loop), at a random moment.
            since = app.commits
            want = since + rng.randint(1, 3)
            h.wait_until(lambda: app.commits >= want, timeout=120, interval=0.02,
                         message=f"round {rnd}: the application committing again ({app.commits} commits)")
            time.sleep(rng.uniform(0, 0.3))
            what = crash(rnd, app)
            cl.log(f"{label} round {rnd}: killed {what}; {app.commits} commits so far")
        end = {i: INPUT_RECORDS // INPUT_PARTITIONS + (1 if i < INPUT_RECORDS % INPUT_PARTITIONS else 0)
               for i in range(INPUT_PARTITIONS)}
        h.wait_until(lambda: committed_offsets(bootstrap_fn(), group, src, INPUT_PARTITIONS) == end,
                     timeout=180, interval=0.5,
                     message=f"the group's committed offsets reaching the input's end {end}")
    finally:
        app.stop()
    print(f"\n{label}: {app.commits} transactions committed over {app.sessions} sessions; "
          f"errors seen by the application: {Counter(e.split('(')[0] for e in app.errors)}")

    got = Counter(drain(bootstrap_fn(), dst, INPUT_PARTITIONS, "read_committed"))
    want = Counter(b"out-" + v for v in inputs)
    missing = want - got
    duplicated = {v: n for v, n in got.items() if n > 1}
    unexpected = set(got) - set(want)
    assert not missing and not duplicated and not unexpected, (
        f"{label}: read_committed output is not exactly once: {len(missing)} missing "
        f"(e.g. {list(missing)[:5]}), {len(duplicated)} duplicated (e.g. {list(duplicated.items())[:5]}), "
        f"{len(unexpected)} unexpected")
    everything = drain(bootstrap_fn(), dst, INPUT_PARTITIONS, "read_uncommitted")
    print(f"{label}: the output log holds {len(everything)} data records, {len(everything) - len(inputs)} "
          "of them from aborted transactions (invisible to read_committed)")
    assert len(everything) >= len(inputs)


@pytest.mark.timeout(600)
def test_consume_transform_produce_is_exactly_once_across_broker_kills(broker_factory):
    b = broker_factory(f"log.segment.bytes={SEGMENT_BYTES}")
    a = h.admin(b.bootstrap)

    def make_topic(name: str) -> None:
        h.create_topic(a, name, partitions=INPUT_PARTITIONS)

    def crash(rnd: int, app: EosApp) -> str:
        b.kill()
        time.sleep(0.2)
        b.start()
        return "the broker"

    run_and_check(lambda: b.bootstrap, make_topic, crash, "single node")
    b.assert_alive()
