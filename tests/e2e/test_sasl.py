"""SASL with real clients: confluent-kafka, kafka-python and kcat authenticate
with PLAIN and SCRAM-SHA-256/512 over SASL_PLAINTEXT and SASL_SSL and round
trip records; SCRAM users are managed with `samsa users` and the
kafka-configs.sh form (`samsa configs alter --entity-type users
--add-config 'SCRAM-SHA-256=[password=...]'`); a wrong password is an
authentication error on the client, quickly; credentials are metadata
records, so they survive a restart and authenticate on every node of a
cluster."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from cluster import Cluster, distinct_ports, log
from conftest import Broker, free_port, samsa_bin

CLIENT_TIMEOUT_S = 20
CLI_TIMEOUT_S = 60
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_carol="carol-secret" user_admin="admin-secret";')
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PROTOCOLS = ["SASL_PLAINTEXT", "SASL_SSL"]
# The password of each mechanism's test user: PLAIN users come from the JAAS
# config, SCRAM users from `samsa users create`.
USERS = {"PLAIN": ("carol", "carol-secret"), "SCRAM-SHA-256": ("alice", "alice-secret"),
         "SCRAM-SHA-512": ("alice", "alice-secret")}


class SaslBroker(Broker):
    """PLAINTEXT on ``port`` (admin, readiness), SASL_PLAINTEXT and SASL_SSL
    (the --dev-tls certificate) on their own ports."""

    def __init__(self, binary, workdir, sets, name="sasl"):
        super().__init__(binary, workdir, sets, name=name)
        self.ports = {"SASL_PLAINTEXT": free_port(), "SASL_SSL": free_port()}

    def command(self) -> list[str]:
        listeners = ",".join([f"PLAINTEXT://127.0.0.1:{self.port}"]
                             + [f"{p}://127.0.0.1:{port}" for p, port in self.ports.items()])
        cmd = [self.binary, "serve", "--data-dir", str(self.data_dir), "--dev-tls",
               "--set", f"listeners={listeners}",
               "--set", "sasl.enabled.mechanisms=" + ",".join(MECHANISMS),
               "--set", f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
               "--set", f"listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}",
               "--set", "auto.create.topics.enable=true"]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd

    @property
    def ca(self) -> str:
        return str(self.data_dir / "tls" / "ca.pem")

    def bootstrap_for(self, protocol: str) -> str:
        return f"127.0.0.1:{self.ports[protocol]}"


def start(tmp_path, name: str, *sets: str) -> SaslBroker:
    b = SaslBroker(samsa_bin(), tmp_path / name, list(sets), name=name)
    b.start()
    return b


def finish(b: SaslBroker) -> None:
    complaint = b.teardown()
    if complaint:
        pytest.fail(complaint + "\n" + b.log_tail(), pytrace=False)


def cli(bootstrap: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [samsa_bin(), *args, "--bootstrap-server", bootstrap]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    b = start(tmp_path_factory.mktemp("sasl"), "sasl")
    cli(b.bootstrap, "users", "create", "alice", "--password", "alice-secret")
    yield b
    finish(b)


def conf(b: SaslBroker, protocol: str, mechanism: str, user: str, password: str, **extra) -> dict:
    c = {"bootstrap.servers": b.bootstrap_for(protocol), "security.protocol": protocol,
         "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
         "broker.address.family": "v4", **extra}
    if protocol == "SASL_SSL":
        c["ssl.ca.location"] = b.ca
    return c


def confluent_round_trip(c: dict, topic: str, n: int = 50) -> list[bytes]:
    p = Producer(c)
    for i in range(n):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(CLIENT_TIMEOUT_S) == 0, "every record delivered"
    consumer = Consumer({**c, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    return got


def topic_name(*parts: str) -> str:
    return "-".join(p.lower().replace("_", "") for p in parts) + "-" + uuid.uuid4().hex[:6]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_round_trip(sasl_broker, protocol, mechanism):
    user, password = USERS[mechanism]
    topic = topic_name("ck", protocol, mechanism)
    got = confluent_round_trip(conf(sasl_broker, protocol, mechanism, user, password), topic)
    assert got == [b"v%d" % i for i in range(50)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_round_trip(sasl_broker, protocol, mechanism):
    from kafka import KafkaConsumer, KafkaProducer

    user, password = USERS[mechanism]
    kw = dict(bootstrap_servers=sasl_broker.bootstrap_for(protocol), security_protocol=protocol,
              sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
    if protocol == "SASL_SSL":
        kw["ssl_cafile"] = sasl_broker.ca
    topic = topic_name("kp", protocol, mechanism)
    p = KafkaProducer(**kw)
    for i in range(20):
        p.send(topic, b"m%d" % i)
    p.flush(CLIENT_TIMEOUT_S)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10_000, **kw)
    got = [m.value for m in c]
    c.close()
    assert got == [b"m%d" % i for i in range(20)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_round_trip(sasl_broker, protocol, mechanism):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not on PATH (scripts/test.sh installs it: apt-get install kcat)", pytrace=False)
    user, password = USERS[mechanism]
    common = ["-b", sasl_broker.bootstrap_for(protocol), "-X", f"security.protocol={protocol}",
              "-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={user}",
              "-X", f"sasl.password={password}"]
    if protocol == "SASL_SSL":
        common += ["-X", f"ssl.ca.location={sasl_broker.ca}"]
    topic = topic_name("kc", protocol, mechanism)
    subprocess.run([kcat, "-P", "-t", topic, *common], input="a\nb\nc\n", text=True, check=True, timeout=30)
    out = subprocess.run([kcat, "-C", "-t", topic, "-e", "-q", *common], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.split() == ["a", "b", "c"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_is_an_authentication_error_quickly(sasl_broker, mechanism, caplog):
    user, _ = USERS[mechanism]
    errors = []
    admin = AdminClient(conf(sasl_broker, "SASL_PLAINTEXT", mechanism, user, "wrong",
                             error_cb=lambda e: errors.append(e)))
    start = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)
    assert time.monotonic() - start < 11
    admin.poll(1)
    assert any("Authentication failed" in str(e) for e in errors), errors
    del admin

    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    # kafka-python logs the broker's answer (SaslAuthenticationFailedError,
    # with its message) at once, then goes on retrying its bootstrap until
    # its own timeout.
    start = time.time()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        with pytest.raises(KafkaError):
            p = KafkaProducer(bootstrap_servers=sasl_broker.bootstrap_for("SASL_PLAINTEXT"),
                              security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                              sasl_plain_username=user, sasl_plain_password="wrong",
                              max_block_ms=5_000, request_timeout_ms=5_000)
            p.close(timeout=1)
    failures = [r for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert failures and "Authentication failed" in failures[0].getMessage(), caplog.text[-2000:]
    assert failures[0].created - start < 5, "the first failure is reported quickly"
    sasl_broker.assert_alive()


def test_users_cli_create_describe_delete_and_the_kafka_configs_form(sasl_broker):
    b = sasl_broker
    cli(b.bootstrap, "users", "create", "dave", "--password", "dave-1", "--mechanism", "SCRAM-SHA-512",
        "--iterations", "8192")
    out = cli(b.bootstrap, "users", "describe", "dave").stdout
    assert "SCRAM credential configs for user-principal 'dave' are SCRAM-SHA-512=iterations=8192" in out, out
    c = conf(b, "SASL_PLAINTEXT", "SCRAM-SHA-512", "dave", "dave-1")
    assert AdminClient(c).list_topics(timeout=10) is not None
    # kafka-configs.sh's form: a new password for SCRAM-SHA-256, SCRAM-SHA-512 deleted.
    cli(b.bootstrap, "configs", "alter", "--entity-type", "users", "--entity-name", "dave",
        "--add-config", "SCRAM-SHA-256=[iterations=4096,password=dave-2]", "--delete-config", "SCRAM-SHA-512")
    out = cli(b.bootstrap, "configs", "describe", "--entity-type", "users").stdout
    assert "user-principal 'dave' are SCRAM-SHA-256=iterations=4096" in out, out
    assert "user-principal 'alice'" in out, out
    ok = conf(b, "SASL_PLAINTEXT", "SCRAM-SHA-256", "dave", "dave-2")
    assert AdminClient(ok).list_topics(timeout=10) is not None
    with pytest.raises(KafkaException):
        AdminClient(c).list_topics(timeout=5)
    # Deleted: it no longer authenticates; describing it is RESOURCE_NOT_FOUND.
    cli(b.bootstrap, "users", "delete", "dave")
    with pytest.raises(KafkaException):
        AdminClient(ok).list_topics(timeout=5)
    p = cli(b.bootstrap, "users", "describe", "dave", check=False)
    assert p.returncode != 0 and "RESOURCE_NOT_FOUND" in p.stderr, p.stderr
    # Kafka's limits: fewer than 4096 iterations is UNACCEPTABLE_CREDENTIAL.
    p = cli(b.bootstrap, "users", "create", "erin", "--password", "x", "--iterations", "100", check=False)
    assert p.returncode != 0 and "UNACCEPTABLE_CREDENTIAL" in p.stderr, p.stderr


def test_scram_credentials_survive_a_restart(tmp_path):
    b = start(tmp_path, "restart")
    try:
        cli(b.bootstrap, "users", "create", "frank", "--password", "frank-secret")
        b.stop()
        b.start()
        for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"]:
            c = conf(b, "SASL_SSL", m, "frank", "frank-secret")
            assert AdminClient(c).list_topics(timeout=10) is not None, m
    finally:
        finish(b)


@pytest.fixture
def sasl_cluster(request, tmp_path):
    """Three nodes, each with a SASL_PLAINTEXT listener for clients next to
    the plaintext ones the cluster's own traffic uses."""
    c = Cluster(samsa_bin(), tmp_path / "cluster", voters=3)
    request.node._samsa_brokers = list(c.nodes.values())
    sasl_ports = dict(zip(c.nodes, distinct_ports(len(c.nodes))))
    for i, n in c.nodes.items():
        props = dict(line.split("=", 1) for line in n.config_path.read_text().splitlines() if "=" in line)
        props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_ports[i]}"
        props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_ports[i]}"
        props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        props["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
        n.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    c.start()
    yield c, sasl_ports
    complaints = c.teardown()
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


def test_a_user_created_on_one_node_authenticates_on_every_node(sasl_cluster):
    c, sasl_ports = sasl_cluster
    first = c.nodes[1]
    cli(first.bootstrap, "users", "create", "grace", "--password", "grace-secret")
    for i, port in sasl_ports.items():
        conf_i = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "grace",
                  "sasl.password": "grace-secret", "broker.address.family": "v4"}
        # The record reaches each node's image shortly after the commit.
        deadline = time.monotonic() + 15
        while True:
            try:
                md = AdminClient(conf_i).list_topics(timeout=5)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        log(f"node {i}: authenticated, {len(md.brokers)} brokers")
        assert len(md.brokers) == 3
