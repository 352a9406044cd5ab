"""Startup refuses what it cannot do safely: security it does not implement
(fail closed) and a data directory another process is using."""

from __future__ import annotations

import subprocess

import pytest

from conftest import free_port, samsa_bin

EXIT_TIMEOUT_S = 30


def serve(data_dir, *args: str) -> subprocess.CompletedProcess:
    cmd = [samsa_bin(), "serve", "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=EXIT_TIMEOUT_S)


@pytest.mark.parametrize("setting,key", [
    ("listeners=SASL_SSL://127.0.0.1:0", "listeners"),
    ("listeners=SSL://127.0.0.1:0", "listeners"),
    ("ssl.keystore.location=/etc/samsa/keystore.jks", "ssl.keystore.location"),
    ("sasl.enabled.mechanisms=SCRAM-SHA-512", "sasl.enabled.mechanisms"),
    ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
     "authorizer.class.name"),
])
def test_security_samsa_does_not_implement_refuses_to_start(tmp_path, setting, key):
    p = serve(tmp_path / "data", "--set", setting)
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, f"samsa started with {setting}:\n{stderr}"
    assert key in stderr, stderr
    assert "refuses to start" in stderr, stderr


def test_a_listener_mapped_to_sasl_refuses_to_start(tmp_path):
    port = free_port()
    p = serve(tmp_path / "data",
              "--set", f"listeners=PLAINTEXT://127.0.0.1:{port},EXTERNAL://127.0.0.1:0",
              "--set", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT")
    stderr = p.stderr.decode(errors="replace")
    assert p.returncode != 0, stderr
    assert "EXTERNAL://127.0.0.1:0" in stderr and "SASL_PLAINTEXT" in stderr, stderr


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
    import time

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
