"""samsa over TLS with real clients: `samsa serve --dev-tls` makes a CA and a
broker certificate and serves SSL; confluent-kafka, kafka-python and kcat
produce and consume through it; a client that does not trust the broker's
CA gets its SSL error quickly and the broker goes on serving; a plaintext
client on the TLS port has its connection closed."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from conftest import Broker, samsa_bin

CLIENT_TIMEOUT_S = 20


class TlsBroker(Broker):
    def command(self) -> list[str]:
        return super().command() + ["--dev-tls"]

    @property
    def ca(self) -> str:
        return str(self.data_dir / "tls" / "ca.pem")


@pytest.fixture
def tls_broker(request, tmp_path):
    b = TlsBroker(samsa_bin(), tmp_path / "tls", ["auto.create.topics.enable=true"], name="tls")
    b.start()
    yield b
    complaint = b.teardown()
    if complaint:
        pytest.fail(complaint + "\n" + b.log_tail(), pytrace=False)


def ssl_conf(b: TlsBroker, **extra) -> dict:
    return {"bootstrap.servers": b.bootstrap, "security.protocol": "SSL", "ssl.ca.location": b.ca, **extra}


def test_dev_tls_prints_client_settings_and_confluent_round_trip(tls_broker):
    log = tls_broker.log_path.read_text()
    assert "security.protocol=SSL" in log and f"ssl.ca.location={tls_broker.ca}" in log, log
    p = Producer(ssl_conf(tls_broker))
    for i in range(100):
        p.produce("secure", key=str(i).encode(), value=(b"v%d" % i) * 50)
    assert p.flush(CLIENT_TIMEOUT_S) == 0
    c = Consumer(ssl_conf(tls_broker, **{"group.id": "g", "auto.offset.reset": "earliest"}))
    c.subscribe(["secure"])
    got = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(got) < 100 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [(b"v%d" % i) * 50 for i in range(100)]


def test_kafka_python_round_trip(tls_broker):
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=tls_broker.bootstrap, security_protocol="SSL", ssl_cafile=tls_broker.ca)
    for i in range(20):
        p.send("kp", b"m%d" % i)
    p.flush(CLIENT_TIMEOUT_S)
    p.close()
    c = KafkaConsumer("kp", bootstrap_servers=tls_broker.bootstrap, security_protocol="SSL",
                      ssl_cafile=tls_broker.ca, auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    got = [m.value for m in c]
    c.close()
    assert got == [b"m%d" % i for i in range(20)]


def test_kcat_round_trip(tls_broker):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not on PATH (scripts/test.sh installs it: apt-get install kcat)", pytrace=False)
    common = ["-b", tls_broker.bootstrap, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={tls_broker.ca}"]
    subprocess.run([kcat, "-P", "-t", "kc", *common], input="a\nb\nc\n", text=True, check=True, timeout=30)
    out = subprocess.run([kcat, "-C", "-t", "kc", "-e", "-q", *common], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.split() == ["a", "b", "c"]


def test_untrusted_ca_fails_quickly_and_the_broker_goes_on(tls_broker, tmp_path):
    other = TlsBroker(samsa_bin(), tmp_path / "other", [], name="other")
    # Only its certificates are wanted: run --dev-tls once in its own dir.
    other.start()
    other.stop()
    errors = []
    admin = AdminClient(ssl_conf(tls_broker, **{"ssl.ca.location": other.ca,
                                                "error_cb": lambda e: errors.append(e)}))
    start = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)
    assert time.monotonic() - start < 11
    admin.poll(1)  # serves error_cb
    assert any("SSL" in str(e) or "certificate" in str(e) for e in errors), errors
    # A plaintext Kafka client on the TLS port: closed, not answered.
    with socket.create_connection((tls_broker.host, tls_broker.port), timeout=10) as s:
        header = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
        s.sendall(struct.pack(">i", len(header)) + header)
        closed = b""
        try:
            while chunk := s.recv(4096):
                closed += chunk
        except ConnectionResetError:
            pass
        # At most a TLS alert: never a Kafka response to correlation id 1.
        assert len(closed) < 8 or struct.unpack(">i", closed[4:8])[0] != 1, closed
    tls_broker.assert_alive()
    good = AdminClient(ssl_conf(tls_broker))
    assert good.list_topics(timeout=10) is not None
