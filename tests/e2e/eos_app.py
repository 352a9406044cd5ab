"""The exactly-once consume-transform-produce application and its checker,
shared by ``test_eos.py`` (single node) and ``test_eos_cluster.py`` (3 nodes).

An application reads an input topic with a group's committed offsets and, for
every input record ``v``, writes ``out-v`` to the same partition of an output
topic inside a transaction that also commits the group's consumed offsets
(``send_offsets_to_transaction``), the loop Kafka's exactly-once semantics are
built for. The checker then reads the output record by record.

The application does what the clients document for errors: any failure aborts
the open transaction if it can and starts over with a new producer (same
``transactional.id``: ``init_transactions`` fences the old one and finishes
whatever it left) and a consumer positioned at the committed offsets
(librdkafka asks for stable offsets, KIP-447, so a commit still in flight is
waited for rather than read half-done).

The watchdog. librdkafka 2.x (the confluent-kafka in requirements.txt) can
block in ``send_offsets_to_transaction()`` (and other transactional calls) far
past the timeout it was given: issue #5511 (the producer's cached group
coordinator names a broker handle that was decommissioned, when that broker
left the metadata after a kill -9 or when a re-bootstrap replaced every handle;
the coordinator request then waits for a state change that never comes) and
issue #5456 (that wait's timeout is never checked). Nothing the broker sends
afterwards wakes it. A real exactly-once application on librdkafka must
therefore guard its transactional calls itself, and that is what this one
does: each session (producer + consumer) runs in its own thread, and a call
that outlives its own timeout plus ``WATCHDOG_MARGIN_S`` makes the supervisor
abandon that session and start a new one with the same ``transactional.id``.
The new producer's ``init_transactions`` bumps the epoch, which fences the
stuck producer: whatever it still sends is refused (PRODUCER_FENCED /
INVALID_PRODUCER_EPOCH), and its open transaction is aborted by the
coordinator before the new session reads the committed offsets. An abandoned
session that wakes up later does nothing more (it only closes its consumer).
Exactly-once therefore never depends on the watchdog; it only keeps the
application moving.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import cluster as cl
import helpers as h

INPUT_PARTITIONS = 3
# Input records per transaction (at most).
TXN_RECORDS_MAX = 20
# Every transactional call gets this timeout (seconds); the broker aborts a
# transaction that stays open longer than TXN_TIMEOUT_MS.
CALL_TIMEOUT_S = 6.0
TXN_TIMEOUT_MS = 10000
# A call still blocked this long after its own timeout ran out is stuck (see
# the module doc): its session is abandoned.
WATCHDOG_MARGIN_S = 4.0
# SAMSA_EOS_DEBUG=1 turns on librdkafka's transaction, group and protocol
# debug logs on stderr (run pytest with -s and redirect stderr to a file).
DEBUG_CONTEXTS = "eos,cgrp,protocol,broker"


class Abandoned(Exception):
    """Raised in a session the watchdog gave up on, once its stuck call returns."""


class Session(threading.Thread):
    """One producer and one consumer, committing transactions until stopped,
    abandoned, or an error ends it."""

    def __init__(self, app: "EosApp", number: int):
        super().__init__(daemon=True, name=f"eos-session-{number}")
        self.app, self.number = app, number
        self.abandoned = False
        self.error: Exception | None = None
        # (name of the call in progress, monotonic deadline incl. the margin)
        self.call: tuple[str, float] | None = None

    def stuck(self) -> str | None:
        call = self.call
        if call is not None and time.monotonic() > call[1]:
            return call[0]
        return None

    def guarded(self, name: str, timeout_s: float, fn, *args, **kwargs):
        if self.abandoned:
            raise Abandoned(name)
        self.call = (name, time.monotonic() + timeout_s + WATCHDOG_MARGIN_S)
        try:
            out = fn(*args, **kwargs)
        finally:
            self.call = None
        if self.abandoned:
            raise Abandoned(name)
        return out

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 -- every failure starts a new session
            self.error = e

    def _run(self) -> None:
        app, g = self.app, self.guarded
        p = Producer({**app.conf(), "transactional.id": app.transactional_id,
                      "transaction.timeout.ms": TXN_TIMEOUT_MS, "message.timeout.ms": TXN_TIMEOUT_MS})
        c = None
        in_txn = False
        try:
            g("init_transactions", CALL_TIMEOUT_S, p.init_transactions, CALL_TIMEOUT_S)
            c = Consumer({**app.conf(), "group.id": app.group, "isolation.level": "read_committed",
                          "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            tps = [TopicPartition(app.src, i) for i in range(app.partitions)]
            committed = g("committed", CALL_TIMEOUT_S, c.committed, tps, timeout=CALL_TIMEOUT_S)
            c.assign([TopicPartition(app.src, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                      for tp in committed])
            while not app.stop_ev.is_set():
                msgs = g("consume", 0.3, c.consume, num_messages=TXN_RECORDS_MAX, timeout=0.3)
                msgs = [m for m in msgs if m.error() is None]
                if not msgs:
                    continue
                p.begin_transaction()
                in_txn = True
                for m in msgs:
                    p.produce(app.dst, value=b"out-" + m.value(), partition=m.partition())
                g("send_offsets_to_transaction", CALL_TIMEOUT_S, p.send_offsets_to_transaction,
                  c.position(c.assignment()), c.consumer_group_metadata(), CALL_TIMEOUT_S)
                g("commit_transaction", CALL_TIMEOUT_S, p.commit_transaction, CALL_TIMEOUT_S)
                in_txn = False
                app.commits += 1
        finally:
            if in_txn and not self.abandoned:
                try:
                    g("abort_transaction", CALL_TIMEOUT_S, p.abort_transaction, CALL_TIMEOUT_S)
                except Exception:  # noqa: BLE001 -- the next session's init_transactions finishes it
                    pass
            if c is not None:
                c.close()


class EosApp:
    """The consume-transform-produce loop (see the module doc): a supervisor
    thread running one ``Session`` at a time."""

    def __init__(self, bootstrap: str, src: str, dst: str, group: str, partitions: int):
        self.bootstrap, self.src, self.dst, self.group = bootstrap, src, dst, group
        self.partitions = partitions
        self.transactional_id = f"eos-{group}"
        self.stop_ev = threading.Event()
        self.commits = 0
        self.sessions = 0
        self.errors: list[str] = []
        self.stalls: list[str] = []  # calls the watchdog gave up on
        self.thread = threading.Thread(target=self._supervise, daemon=True, name="eos-supervisor")

    def start(self) -> "EosApp":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(timeout=CALL_TIMEOUT_S * 3 + WATCHDOG_MARGIN_S)
        assert not self.thread.is_alive(), "the application did not stop"

    def summary(self, label: str) -> str:
        return (f"{label}: {self.commits} transactions committed over {self.sessions} sessions; "
                f"errors seen by the application: {Counter(e.split('(')[0] for e in self.errors)}; "
                f"calls the watchdog gave up on: {Counter(self.stalls)}")

    def conf(self) -> dict:
        # librdkafka 2.16 re-bootstraps when every broker is down (a single
        # node killed), which replaces its broker handles and triggers the
        # stall the watchdog exists for (see the module doc) on almost every
        # restart; "none" keeps the handles. The watchdog still covers the
        # cluster form of the same bug (a killed broker leaving the metadata).
        conf = {**cl.client_conf(self.bootstrap), "metadata.recovery.strategy": "none"}
        if os.environ.get("SAMSA_EOS_DEBUG"):
            conf.update({"debug": DEBUG_CONTEXTS, "log_level": 7})
        return conf

    def _supervise(self) -> None:
        while not self.stop_ev.is_set():
            self.sessions += 1
            s = Session(self, self.sessions)
            s.start()
            while s.is_alive():
                call = s.stuck()
                if call is not None:
                    s.abandoned = True
                    self.stalls.append(call)
                    cl.log(f"eos app: watchdog: session {s.number} stuck in {call} for more than "
                           f"{WATCHDOG_MARGIN_S}s past its timeout; abandoned, starting a new producer")
                    break
                s.join(timeout=0.1)
            if s.error is not None:
                self.errors.append(repr(s.error))
                cl.log(f"eos app: session {s.number} ended: {s.error!r}")
                time.sleep(0.3)


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int] | None:
    c = Consumer({**h.base_conf(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, i) for i in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    except Exception:  # noqa: BLE001 -- the coordinator may be moving
        return None
    finally:
        c.close()


def drain(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of ``topic`` (up to its end at the time of the call) as
    ``isolation`` reads it: {partition: [(offset, value)] in offset order}."""
    c = Consumer({**h.base_conf(bootstrap), "group.id": f"drain-{topic}", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
        out: dict[int, list[tuple[int, bytes]]] = {i: [] for i in range(partitions)}
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
                out[m.partition()].append((m.offset(), m.value()))
        return out
    finally:
        c.close()


def fill_input(bootstrap: str, src: str, records: int) -> dict[int, list[bytes]]:
    """``records`` values round-robin over the input's partitions (acks=all):
    {partition: values in offset order}."""
    inputs = [f"{i}".encode() for i in range(records)]
    out = h.produce_and_flush(h.producer(bootstrap, acks="all"),
                              [dict(value=v, partition=i % INPUT_PARTITIONS) for i, v in enumerate(inputs)], src)
    assert not out.errors, out.errors[:3]
    return {p: inputs[p::INPUT_PARTITIONS] for p in range(INPUT_PARTITIONS)}


def run_through_crashes(app: EosApp, rounds: int, crash, label: str, seed: int = 15) -> None:
    """Run ``app`` through ``rounds`` calls of ``crash(round, app) -> description``,
    each once the application committed again since the last one (so each
    round hits a running loop), at a random moment."""
    rng = random.Random(seed)
    for rnd in range(rounds):
        want = app.commits + rng.randint(1, 3)
        h.wait_until(lambda: app.commits >= want, timeout=120, interval=0.02,
                     message=f"round {rnd}: the application committing again ({app.commits} commits)")
        time.sleep(rng.uniform(0, 0.3))
        what = crash(rnd, app)
        cl.log(f"{label} round {rnd}: killed {what}; {app.commits} commits so far")


def check_output(bootstrap: str, inputs: dict[int, list[bytes]], dst: str, label: str) -> None:
    """Record by record: read_committed reads, in each output partition, exactly
    the transformed inputs of that input partition, in order (every input's
    result once, nothing else, so no copy from an aborted transaction), and
    every record it reads is the one read_uncommitted reads at that offset.
    The records only read_uncommitted sees are aborted transactions' copies."""
    committed = drain(bootstrap, dst, INPUT_PARTITIONS, "read_committed")
    everything = drain(bootstrap, dst, INPUT_PARTITIONS, "read_uncommitted")
    aborted = 0
    for p in range(INPUT_PARTITIONS):
        want = [b"out-" + v for v in inputs[p]]
        got = [v for _, v in committed[p]]
        if got != want:
            counts = Counter(got)
            missing = [v for v in want if v not in counts]
            duplicated = {v: n for v, n in counts.items() if n > 1}
            unexpected = set(counts) - set(want)
            raise AssertionError(
                f"{label}: read_committed output partition {p} is not each input's result once, in order: "
                f"{len(got)} records for {len(want)} inputs; {len(missing)} missing (e.g. {missing[:5]}), "
                f"{len(duplicated)} duplicated (e.g. {list(duplicated.items())[:5]}), "
                f"{len(unexpected)} unexpected; first difference at index "
                f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
        all_at = dict(everything[p])
        for off, v in committed[p]:
            assert all_at.get(off) == v, (
                f"{label}: read_committed read {v!r} at {dst}-{p}@{off}, read_uncommitted {all_at.get(off)!r}")
        seen = {off for off, _ in committed[p]}
        aborted += sum(1 for off, _ in everything[p] if off not in seen)
    total = sum(len(v) for v in inputs.values())
    print(f"{label}: the output log holds {total + aborted} data records, {aborted} of them from aborted "
          "transactions (invisible to read_committed)")


def wait_caught_up(app: EosApp, bootstrap_fn, inputs: dict[int, list[bytes]]) -> None:
    """Wait until the group's committed offsets are the input's end offsets."""
    end = {p: len(v) for p, v in inputs.items()}
    h.wait_until(lambda: committed_offsets(bootstrap_fn(), app.group, app.src, INPUT_PARTITIONS) == end,
                 timeout=180, interval=0.5, message=f"the group's committed offsets reaching the input's end {end}")
