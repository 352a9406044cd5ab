"""Large fetches: record sets go to the socket from the segment files.

Fetch responses carry record sets of 16 KiB and more as ranges of the segment
files, written to the socket from a memory map of the file (1 MiB at a time)
when the response goes out. These tests read many megabytes spread over many
small segments with three different clients and check every byte, and check
that serving them does not grow the broker's memory with the response size.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

import helpers as h

RECORDS = 11000
SEGMENT_BYTES = 1024 * 1024


def value_for(i: int) -> bytes:
    """A deterministic value of 200..4200 bytes that names its index."""
    size = 200 + (i * 7919) % 4000
    seed = hashlib.sha256(str(i).encode()).digest()
    return (f"{i:08d}|".encode() + seed * (size // 32 + 1))[:size]


@pytest.fixture
def big_topic(broker):
    """One partition of ~24 MB over ~24 segments of 1 MiB (the smallest allowed)."""
    t = h.unique_topic("fetch-path")
    h.create_topic(h.admin(broker.bootstrap), t, 1, {"segment.bytes": str(SEGMENT_BYTES)})
    p = h.producer(broker.bootstrap, acks="all", compression_type="none", batch_size=65536)
    log = h.produce_and_flush(p, ({"key": str(i).encode(), "value": value_for(i)} for i in range(RECORDS)), t)
    assert not log.errors, log.errors[:3]
    assert [d.offset for d in sorted(log.ok, key=lambda d: d.offset)] == list(range(RECORDS))
    segments = list(broker.data_dir.rglob(f"{t}-0/*.log"))
    assert len(segments) > 15, f"expected many segments, found {len(segments)}"
    return t


def check_records(pairs, what: str) -> None:
    """pairs: [(offset, key, value)] in the order consumed."""
    assert len(pairs) == RECORDS, f"{what}: {len(pairs)} records, expected {RECORDS}"
    for want, (offset, key, value) in enumerate(pairs):
        assert offset == want, f"{what}: offset {offset} where {want} was expected"
        assert key == str(want).encode(), f"{what}: key at {offset} is {key!r}"
        assert value == value_for(want), f"{what}: value at offset {offset} differs"


def test_confluent_reads_every_byte_across_segments(broker, big_topic):
    # check.crcs makes librdkafka verify every batch's CRC-32C, so a byte
    # sent from the wrong place in a file shows up as a CRC error.
    got = h.consume_partitions(broker.bootstrap, big_topic, [0], timeout=60, check_crcs=True,
                               fetch_max_bytes=52428800, max_partition_fetch_bytes=4194304)
    check_records([(r.offset, r.key, r.value) for r in got[0]], "confluent-kafka")


def test_confluent_reads_from_the_middle_of_a_segment(broker, big_topic):
    start = RECORDS // 2 + 17
    got = h.consume_partitions(broker.bootstrap, big_topic, [0], start=start, timeout=60, check_crcs=True)
    pairs = [(r.offset, r.key, r.value) for r in got[0]]
    assert pairs[0][0] == start
    assert len(pairs) == RECORDS - start
    for offset, key, value in pairs:
        assert key == str(offset).encode() and value == value_for(offset), f"record at {offset} differs"


def test_kafka_python_reads_every_byte_across_segments(broker, big_topic):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, check_crcs=True,
                      fetch_max_bytes=8 * 1024 * 1024, max_partition_fetch_bytes=2 * 1024 * 1024,
                      request_timeout_ms=30000)
    try:
        tp = KpTopicPartition(big_topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        pairs = []
        deadline = time.monotonic() + 60
        while len(pairs) < RECORDS and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                pairs.extend((r.offset, r.key, r.value) for r in records)
    finally:
        c.close()
    check_records(pairs, "kafka-python")


def test_kcat_reads_every_byte_across_segments(broker, big_topic):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not on PATH (scripts/test.sh installs it: apt-get install kcat)", pytrace=False)
    # One line per record: offset, key and the SHA-256 of the value would need
    # a custom format; kcat prints the value length (%S) and the value, so
    # compare offsets, keys and lengths here and the values' digest overall.
    p = subprocess.run([kcat, "-C", "-b", broker.bootstrap, "-t", big_topic, "-p", "0", "-o", "beginning",
                        "-e", "-q", "-X", "check.crcs=true", "-f", "%o %k %S\n"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == RECORDS
    for want, line in enumerate(lines):
        offset, key, size = line.split()
        assert (int(offset), key, int(size)) == (want, str(want), len(value_for(want))), line
    p = subprocess.run([kcat, "-C", "-b", broker.bootstrap, "-t", big_topic, "-p", "0", "-o", "beginning",
                        "-e", "-q", "-D", "", "-f", "%s"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert hashlib.sha256(p.stdout).hexdigest() == hashlib.sha256(
        b"".join(value_for(i) for i in range(RECORDS))).hexdigest()


def test_serving_large_fetches_does_not_grow_broker_memory(broker, big_topic):
    """Reading ~24 MB in responses of up to 8 MB leaves the broker's peak RSS
    where it was: the records go from the page cache to the socket."""
    time.sleep(0.5)
    # Reset the peak-RSS counter (VmHWM) to the current RSS (proc(5), clear_refs 5).
    with open(f"/proc/{broker.pid}/clear_refs", "w") as f:
        f.write("5")
    before = broker.rss_kib()
    c = h.consumer(broker.bootstrap, fetch_max_bytes=52428800, max_partition_fetch_bytes=8388608,
                   queued_max_messages_kbytes=65536)
    try:
        c.assign([TopicPartition(big_topic, 0, OFFSET_BEGINNING)])
        got = h.drain(c, [0], timeout=60)
    finally:
        c.close()
    assert len(got[0]) == RECORDS
    grown_kib = broker.peak_rss_kib() - before
    # A response read into memory would need at least its 8 MB.
    assert grown_kib < 4 * 1024, f"broker peak RSS grew by {grown_kib} KiB while serving 8 MB fetches"
