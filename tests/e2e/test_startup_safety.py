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
