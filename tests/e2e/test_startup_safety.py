"""Startup refuses what it cannot do safely: security it does not implement
(fail closed) and a data directory another process is using."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import free_port, samsa_bin

EXIT_TIMEOUT_S = 30


def serve(data_dir, *args: str) -> subprocess.CompletedProcess:
    cmd = [samsa_bin(), "serve", "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=EXIT_TIMEOUT_S)


@pytest.mark.parametrize("setting,key", [
    # A SASL listener without enabled mechanisms (Kafka's default, GSSAPI, is not implemented).
    ("listeners=SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms"),
    # An SSL listener without a key store, or with a JKS one (only PEM is read).
    ("listeners=SSL://127.0.0.1:0", "ssl.keystore.location"),
    ("listeners=SASL_SSL://127.0.0.1:0", "ssl.keystore.location"),
    ("sasl.kerberos.service.name=kafka", "sasl.kerberos.service.name"),
    # Only the standard authorizer exists: any other class fails closed.
    ("authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
     "authorizer.class.name"),
    # The standard one checks only part of the APIs so far: it runs only when
    # the operator accepts that.
    ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
     "samsa.authorizer.unchecked.apis.allow"),
])
def test_security_samsa_does_not_implement_refuses_to_start(tmp_path, setting, key):
    p = serve(tmp_path / "data", "--set", setting)
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, f"samsa started with {setting}:\n{stderr}"
    assert key in stderr, stderr
    assert "refuses to start" in stderr, stderr


def test_a_jks_key_store_refuses_to_start(tmp_path):
    p = serve(tmp_path / "data", "--set", "listeners=SSL://127.0.0.1:0",
              "--set", "ssl.keystore.location=/etc/samsa/keystore.jks", "--set", "ssl.keystore.type=JKS")
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, stderr
    assert "ssl.keystore.type" in stderr and "PEM" in stderr, stderr


def test_a_listener_mapped_to_sasl_needs_mechanisms_samsa_implements(tmp_path):
    port = free_port()
    base = ["--set", f"listeners=PLAINTEXT://127.0.0.1:{port},EXTERNAL://127.0.0.1:0",
            "--set", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT"]
    for mechanisms, named in [("GSSAPI", "GSSAPI"), ("OAUTHBEARER", "OAUTHBEARER"),
                              ("PLAIN", "listener.name.external.plain.sasl.jaas.config")]:
        p = serve(tmp_path / "data", *base, "--set", f"sasl.enabled.mechanisms={mechanisms}")
        stderr = p.stderr.decode(errors="replace")
        assert p.returncode != 0, stderr
        assert named in stderr and "refuses to start" in stderr, stderr
    # SASL between brokers is not implemented: fail closed, naming the key.
    p = serve(tmp_path / "data", *base, "--set", "sasl.enabled.mechanisms=SCRAM-SHA-256",
              "--set", "inter.broker.listener.name=EXTERNAL")
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, stderr
    assert "inter.broker.listener.name" in stderr and "SASL" in stderr, stderr


def test_a_second_broker_on_the_same_data_directory_refuses_to_start(broker):
    p = serve(broker.data_dir, "--listen", f"127.0.0.1:{free_port()}")
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, stderr
    assert str(broker.data_dir) in stderr and "in use" in stderr, stderr
    broker.assert_alive()
    # The first one still serves, and after it stops the directory is free.
    broker.stop()
    broker.start()


# --- a full disk: KAFKA_STORAGE_ERROR, one broker log line, recovery without restart ---

@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs (needs root, as CI and the dev machines run)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_is_logged_once_and_writes_resume_when_space_is_freed(tmp_path, small_disk):

    import helpers as h
    from conftest import Broker

    b = Broker(samsa_bin(), tmp_path / "b", ["log.segment.bytes=1048576"], name="full")
    b.data_dir = small_disk / "data"
    b.data_dir.mkdir()
    try:
        b.start()
        a = h.admin(b.bootstrap)
        h.create_topic(a, "filling", partitions=1)
        filler = small_disk / "filler"
        filler.write_bytes(b"\0" * (2 << 20))
        value = b"v" * (64 << 10)
        producer = h.producer(b.bootstrap, acks="1", **{"message.timeout.ms": 4000,
                                                       "linger.ms": 0})
        started = time.monotonic()
        log = h.produce_and_flush(producer, [dict(value=value) for _ in range(120)], "filling")
        elapsed = time.monotonic() - started
        assert log.ok, "some records fit before the disk filled up"
        assert log.errors, "7.5 MB cannot fit on a 6 MiB disk"
        text = b.log_path.read_text(errors="replace")
        lines = [l for l in text.splitlines() if "the disk is full" in l]
        assert lines, b.log_tail()
        assert "free_bytes" in lines[0] and str(small_disk) in lines[0], lines[0]
        assert len(lines) <= 1 + int(elapsed // 10), f"{len(lines)} lines in {elapsed:.1f}s"
        # Free space: the same broker takes writes again, no restart.
        filler.unlink()
        h.wait_until(lambda: not h.produce_and_flush(
            h.producer(b.bootstrap, acks="1", **{"message.timeout.ms": 4000}),
            [dict(value=b"after")], "filling").errors, timeout=30,
            message="a produce succeeds after space was freed")
        b.assert_alive()
    finally:
        b.teardown()


def fill_disk(path):
    """Writes `path` until the filesystem is full (ENOSPC)."""
    import errno
    chunk = b"\0" * (64 << 10)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                return


def disk_full_lines(node):
    return [l for l in node.log_path.read_text(errors="replace").splitlines()
            if "the disk is full" in l]


def assert_rate_limited(node, elapsed):
    """One full-disk line per 10 s, and no other flood of ENOSPC errors."""
    text = node.log_path.read_text(errors="replace").splitlines()
    lines = [l for l in text if "the disk is full" in l]
    assert len(lines) <= 1 + int(elapsed // 10), f"{len(lines)} lines in {elapsed:.1f}s"
    enospc = [l for l in text if "No space left on device" in l]
    assert len(enospc) <= 5 + int(elapsed // 10), \
        f"{len(enospc)} ENOSPC lines in {elapsed:.1f}s, e.g. {enospc[-1][:300]}"


def test_a_full_disk_under_consumer_offsets_is_logged_and_commits_resume(tmp_path, small_disk):
    """The group coordinator's __consumer_offsets appends get the same rate-limited
    full-disk line as produce, and commits work again once space is freed."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    import helpers as h
    from conftest import Broker

    b = Broker(samsa_bin(), tmp_path / "b", ["offsets.topic.num.partitions=1"], name="full-groups")
    b.data_dir = small_disk / "data"
    b.data_dir.mkdir()
    try:
        b.start()
        a = h.admin(b.bootstrap)
        t = h.unique_topic("committed")
        h.create_topic(a, t, partitions=1)
        c = Consumer({**h.base_conf(b.bootstrap), "group.id": "full-disk-group",
                      "enable.auto.commit": False})

        def commit(offset):
            try:
                c.commit(offsets=[TopicPartition(t, 0, offset)], asynchronous=False)
                return True
            except KafkaException:
                return False

        h.wait_until(lambda: commit(1), timeout=30, message="a first commit")
        assert not disk_full_lines(b)
        filler = small_disk / "filler"
        fill_disk(filler)
        started = time.monotonic()
        failed = 0
        for i in range(40):
            failed += not commit(100 + i)
        elapsed = time.monotonic() - started
        assert failed, "commits cannot all be stored on a full disk"
        lines = disk_full_lines(b)
        assert lines, b.log_tail()
        assert "free_bytes" in lines[0] and "__consumer_offsets" in lines[0], lines[0]
        assert_rate_limited(b, elapsed)
        # Free space: the same broker stores commits again, no restart.
        filler.unlink()
        h.wait_until(lambda: commit(500), timeout=30, message="a commit succeeds after space was freed")
        got = c.committed([TopicPartition(t, 0)], timeout=10)
        assert got[0].offset == 500, got
        c.close()
        b.assert_alive()
    finally:
        b.teardown()


def test_a_full_disk_on_a_follower_is_logged_and_replication_resumes(tmp_path):
    """A follower whose disk is full logs the same rate-limited line as produce
    (path, free space) from its replica fetcher, and catches up once space is freed."""
    import helpers as h
    from cluster import Cluster

    # No ISR shrink while the follower is stuck: its metadata log lives on the
    # same full disk, and this test is about the fetcher's appends.
    c = Cluster(samsa_bin(), tmp_path / "cluster", voters=3,
                overrides={"replica.lag.time.max.ms": "600000"})
    follower = c.nodes[3]
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(follower.data_dir)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace')}")
    try:
        c.start()
        t = h.unique_topic("follower-full")
        c.create_topic(t, 3, rf=3)
        p = next(p for p in range(3) if c.leader_of(t, p) != 3)
        filler = follower.data_dir / "filler"
        fill_disk(filler)
        started = time.monotonic()
        producer = h.producer(c.bootstrap, acks="1")
        value = b"f" * (16 << 10)
        log = h.produce_and_flush(producer, [dict(value=value, partition=p) for _ in range(200)], t)
        assert not log.errors, log.errors[:3]
        h.wait_until(lambda: disk_full_lines(follower), timeout=30,
                     message="the follower logs its full disk")
        time.sleep(2)
        elapsed = time.monotonic() - started
        lines = disk_full_lines(follower)
        assert "free_bytes" in lines[0] and str(follower.data_dir) in lines[0], lines[0]
        assert_rate_limited(follower, elapsed)
        # Free space: the same follower replicates again, no restart.
        filler.unlink()
        marker = f"after-{t}".encode()
        assert not h.produce_and_flush(producer, [dict(value=marker, partition=p)], t).errors
        part_dir = follower.data_dir / f"{t}-{p}"

        def has_marker():
            return any(marker in f.read_bytes() for f in part_dir.glob("*.log"))
        h.wait_until(has_marker, timeout=60, message="the follower replicates after space was freed")
        for n in c.nodes.values():
            n.assert_alive()
    finally:
        complaints = c.teardown()
        subprocess.run(["umount", "-l", str(follower.data_dir)], capture_output=True)
    assert not complaints, complaints


# --- a damaged batch in an old segment: reported, nothing cut, no offsets skipped ---

def batch_positions(segment: bytes):
    """(position, base offset, size) of each record batch in a segment file."""
    out, pos = [], 0
    while pos + 12 <= len(segment):
        base = int.from_bytes(segment[pos:pos + 8], "big", signed=True)
        size = 12 + int.from_bytes(segment[pos + 8:pos + 12], "big")
        out.append((pos, base, size))
        pos += size
    return out


def test_a_damaged_batch_in_an_old_segment_is_never_cut_or_skipped(broker_factory):
    from confluent_kafka import KafkaError, TopicPartition

    import helpers as h

    b = broker_factory("log.segment.bytes=1048576")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("damaged")
    h.create_topic(a, t, partitions=1)
    log = h.produce_and_flush(h.producer(b.bootstrap, acks="all", **{"batch.num.messages": 20}),
                              [dict(value=b"%06d" % i * 170) for i in range(3000)], t)
    assert not log.errors and len(log.ok) == 3000
    b.stop()
    part = b.data_dir / f"{t}-0"
    segments = sorted(part.glob("*.log"))
    assert len(segments) >= 3, segments
    sizes = {p.name: p.stat().st_size for p in segments}
    # A corrupted batch length in the middle of the first (closed) segment.
    first = bytearray(segments[0].read_bytes())
    batches = batch_positions(bytes(first))
    assert len(batches) > 3, batches
    pos, damaged, _ = batches[len(batches) // 2]
    first[pos + 8:pos + 12] = (0x00F00000).to_bytes(4, "big")
    segments[0].write_bytes(bytes(first))
    second_base = int(segments[1].stem)

    b.start()
    assert h.watermarks(b.bootstrap, t, 0)[1] == 3000, "no offsets vanished"
    assert {p.name: p.stat().st_size for p in segments} == sizes, "nothing was cut"

    # A consumer from the start gets every record before the damage, then an
    # error at it — never the records after it under a silent jump.
    c = h.consumer(b.bootstrap)
    try:
        c.assign([TopicPartition(t, 0, 0)])
        offsets, error = [], None
        deadline = time.monotonic() + 30
        while error is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    error = m.error()
                continue
            offsets.append(m.offset())
    finally:
        c.close()
    assert offsets == list(range(damaged)), (offsets[-3:], damaged)
    # Kafka error 2, CORRUPT_MESSAGE (librdkafka calls it INVALID_MSG).
    assert error is not None and error.code() == 2, error
    assert "damaged batch" in b.log_path.read_text(errors="replace"), b.log_tail()
    # What follows the damaged segment is served.
    after = h.consume_partitions(b.bootstrap, t, [0], start=second_base)[0]
    assert [r.offset for r in after] == list(range(second_base, 3000))
