"""Hostile and malformed input on raw sockets.

Each case runs on its own connection while a second, well-behaved client
keeps working, the broker process stays alive, and its peak resident memory
(VmHWM) grows by less than RSS_BUDGET_KIB.
"""

from __future__ import annotations

import random
import struct
from functools import lru_cache

import pytest

import helpers as h
import kafka_wire as w

RSS_BUDGET_KIB = 200 * 1024
RESPONSE_TIMEOUT_S = 20.0


class Canary:
    """The healthy second client: one long-lived raw connection, fresh raw
    connections, and a confluent-kafka producer writing to its own topic."""

    def __init__(self, broker):
        self.broker = broker
        self.topic = h.unique_topic("canary")
        h.create_topic(h.admin(broker.bootstrap), self.topic)
        self.producer = h.producer(broker.bootstrap, acks="all")
        self.sent = 0
        self.sock = w.connect(broker.bootstrap)
        self.cid = 1000
        self.check()
        self.base_peak_kib = broker.peak_rss_kib()

    def check(self) -> None:
        self.broker.assert_alive()
        self.cid += 10
        md = w.healthy_exchange(self.broker.bootstrap, self.sock, self.cid)       # existing connection
        assert self.topic in md.topics
        w.healthy_exchange(self.broker.bootstrap, None, self.cid + 5)               # new connection
        log = h.produce_and_flush(self.producer, [dict(value=f"canary-{self.sent}".encode())], self.topic)
        assert not log.errors, log.errors
        assert log.ok[0].offset == self.sent, "canary record landed at the wrong offset"
        self.sent += 1
        self.broker.assert_alive()

    def check_memory(self) -> None:
        growth = self.broker.peak_rss_kib() - self.base_peak_kib
        assert growth < RSS_BUDGET_KIB, f"broker peak RSS grew by {growth // 1024} MiB"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def canary(broker):
    c = Canary(broker)
    yield c
    c.close()


def closed_or_response(sock, correlation_id: int) -> bytes | None:
    """The broker must either close the connection or answer this correlation id
    (with some error) in bounded time; silence is a failure."""
    try:
        resp = w.read_frame(sock, timeout=RESPONSE_TIMEOUT_S)
    except TimeoutError:
        pytest.fail("broker neither answered nor closed the connection")
    if resp is not None:
        (cid,) = struct.unpack(">i", resp[:4])
        assert cid == correlation_id, f"response for unknown correlation id {cid}"
    return resp


@pytest.mark.parametrize("size", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF], ids=["2GiB", "negative", "minus1"])
def test_frame_size_claiming_2gib_closes_connection(broker, canary, size):
    bad = w.connect(broker.bootstrap)
    try:
        w.send_all(bad, struct.pack(">I", size) + b"\x00\x12\x00\x00" + b"\x00" * 12)
        # The broker serves others while this connection is still open/pending.
        canary.check()
        assert w.wait_closed(bad, timeout=10), "connection with an oversized frame header stayed open"
    finally:
        bad.close()
    canary.check()
    canary.check_memory()


def test_metadata_claiming_2pow31_topics(broker, canary):
    bad = w.connect(broker.bootstrap)
    try:
        req = w.frame(w.request_header_v1(w.METADATA, 1, 77) + w.i32(0x7FFFFFFF))
        w.send_all(bad, req)
        closed_or_response(bad, 77)
    finally:
        bad.close()
    canary.check()
    canary.check_memory()


def test_flexible_metadata_claiming_2pow31_topics(broker, canary):
    """Same lie in a flexible (v12, compact array) request with header v2."""
    bad = w.connect(broker.bootstrap)
    try:
        header = w.request_header_v1(w.METADATA, 12, 78) + b"\x00"  # + empty tagged fields
        body = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x07])  # uvarint 2^31 - 1 (compact length N+1)
        w.send_all(bad, w.frame(header + body))
        closed_or_response(bad, 78)
    finally:
        bad.close()
    canary.check()
    canary.check_memory()


def test_garbage_bytes(broker, canary):
    rng = random.Random(20240115)
    cases = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",     # a web client on the wrong port
        w.frame(rng.randbytes(512)),                        # a frame of noise
        w.frame(b"\x00\x03\x00"),                           # frame shorter than any request header
        w.frame(w.i16(3) + w.i16(1) + w.i32(5) + w.i16(3000) + b"x"),  # client id longer than the frame
    ]
    for i, payload in enumerate(cases):
        bad = w.connect(broker.bootstrap)
        try:
            if w.send_all(bad, payload):
                try:
                    w.read_frame(bad, timeout=RESPONSE_TIMEOUT_S)
                except TimeoutError:
                    pytest.fail(f"garbage case {i}: broker neither answered nor closed")
                except ValueError:
                    pass  # an answer that is not a sane frame still means no hang
        finally:
            bad.close()
        canary.check()
    # A client that vanishes halfway through a frame.
    bad = w.connect(broker.bootstrap)
    w.send_all(bad, w.i32(100) + b"\x00" * 10)
    bad.close()
    canary.check()
    canary.check_memory()


def test_unknown_api_key(broker, canary):
    bad = w.connect(broker.bootstrap)
    try:
        w.send_all(bad, w.frame(w.request_header_v1(999, 0, 55)))
        closed_or_response(bad, 55)
    finally:
        bad.close()
    canary.check()


def test_api_versions_unsupported_version_answers_in_v0_format(broker, canary):
    s = w.connect(broker.bootstrap)
    try:
        resp = w.roundtrip(s, w.api_versions_request(99, 31), timeout=RESPONSE_TIMEOUT_S)
        assert resp is not None, "broker closed the connection instead of answering ApiVersions v99"
        av = w.parse_api_versions_v0(resp)
        assert av.correlation_id == 31
        assert av.error_code == w.ERR_UNSUPPORTED_VERSION
        assert av.apis, "UNSUPPORTED_VERSION answer must still list the supported APIs"
        assert w.API_VERSIONS in av.apis and av.apis[w.API_VERSIONS][0] == 0
        assert w.PRODUCE in av.apis and w.METADATA in av.apis
        assert av.trailing == 0, f"{av.trailing} bytes after the v0 body"
        # Clients retry on the same connection with a version from that list.
        resp = w.roundtrip(s, w.api_versions_request(0, 32))
        assert resp is not None and w.parse_api_versions_v0(resp).error_code == w.ERR_NONE
    finally:
        s.close()
    canary.check()


def produce_raw(bootstrap: str, topic: str, records: bytes, correlation_id: int):
    """Send one Produce v3 (acks=-1) and return the partition result, or None if
    the broker closed the connection."""
    s = w.connect(bootstrap)
    try:
        resp = w.roundtrip(s, w.produce_v3_request(correlation_id, topic, 0, records), timeout=60)
        if resp is None:
            return None
        cid, results = w.parse_produce_v3(resp)
        assert cid == correlation_id
        return results[(topic, 0)]
    finally:
        s.close()


def test_valid_raw_batch_is_accepted_then_corrupt_crc_rejected(broker, canary):
    t = h.unique_topic("crc")
    h.create_topic(h.admin(broker.bootstrap), t)

    # Positive control: the hand-built batch is valid and lands.
    good = w.simple_batch([b"one", b"two", b"three"], key=b"k")
    r = produce_raw(broker.bootstrap, t, good, 1)
    assert r is not None and (r.error_code, r.base_offset) == (w.ERR_NONE, 0), r
    assert h.watermarks(broker.bootstrap, t) == (0, 3)

    bad = bytearray(w.simple_batch([b"four", b"five"], key=b"k"))
    bad[w.BATCH_CRC_OFFSET] ^= 0xFF
    r = produce_raw(broker.bootstrap, t, bytes(bad), 2)
    assert r is not None, "broker closed the connection instead of answering"
    assert r.error_code == w.ERR_CORRUPT_MESSAGE, r

    # Same batch with a flipped payload byte (CRC now stale).
    bad = bytearray(w.simple_batch([b"four", b"five"], key=b"k"))
    bad[-3] ^= 0x01
    r = produce_raw(broker.bootstrap, t, bytes(bad), 3)
    assert r is not None and r.error_code == w.ERR_CORRUPT_MESSAGE, r

    assert h.watermarks(broker.bootstrap, t) == (0, 3), "a corrupt batch was appended"
    got = h.consume_partitions(broker.bootstrap, t, [0])[0]
    assert [(r.key, r.value) for r in got] == [(b"k", b"one"), (b"k", b"two"), (b"k", b"three")]
    canary.check()


def test_batch_length_lies(broker, canary):
    t = h.unique_topic("lies")
    h.create_topic(h.admin(broker.bootstrap), t)
    batch = bytearray(w.simple_batch([b"x"]))
    batch[8:12] = struct.pack(">i", 0x7FFFFFF0)  # batch length far beyond the records bytes
    s = w.connect(broker.bootstrap)
    try:
        w.send_all(s, w.produce_v3_request(9, t, 0, bytes(batch)))
        resp = closed_or_response(s, 9)
        if resp is not None:
            _, results = w.parse_produce_v3(resp)
            assert results[(t, 0)].error_code in (w.ERR_CORRUPT_MESSAGE, w.ERR_INVALID_RECORD), results
    finally:
        s.close()
    # Records bytes whose own length prefix exceeds the request.
    s = w.connect(broker.bootstrap)
    try:
        body = (w.string(None) + w.i16(-1) + w.i32(10000) + w.i32(1) + w.string(t)
                + w.i32(1) + w.i32(0) + w.i32(0x7FFFFFF0) + b"\x00" * 16)
        w.send_all(s, w.frame(w.request_header_v1(w.PRODUCE, 3, 10) + body))
        closed_or_response(s, 10)
    finally:
        s.close()
    assert h.watermarks(broker.bootstrap, t) == (0, 0)
    canary.check()
    canary.check_memory()


def test_oversized_batch_rejected(broker, canary):
    t = h.unique_topic("oversized")
    h.create_topic(h.admin(broker.bootstrap), t)
    r = produce_raw(broker.bootstrap, t, w.simple_batch([b"ok"]), 1)
    assert r is not None and r.error_code == w.ERR_NONE, r

    rng = random.Random(7)
    big = w.simple_batch([rng.randbytes(600_000), rng.randbytes(600_000)])  # > 1048588 (message.max.bytes)
    assert len(big) > 1_048_588
    r = produce_raw(broker.bootstrap, t, big, 2)
    assert r is not None, "broker closed the connection instead of answering"
    assert r.error_code == w.ERR_MESSAGE_TOO_LARGE, r
    assert h.watermarks(broker.bootstrap, t) == (0, 1)
    canary.check()
    canary.check_memory()


@lru_cache(maxsize=None)
def bomb(shape: str) -> bytes:
    if shape == "1024x1MiB":
        return w.gzip_bomb_batch(1 << 30, 1 << 20)
    return w.gzip_bomb_batch(1 << 30, 1 << 30)  # one record with a 1 GiB value


@pytest.mark.parametrize("shape", ["1024x1MiB", "1x1GiB"])
def test_gzip_bomb(broker_factory, shape):
    # The compressed batch is ~1 MiB, just over the default message.max.bytes;
    # raise the limit so the broker really has to look inside the batch.
    b = broker_factory("message.max.bytes=8388608")
    canary = Canary(b)
    try:
        t = h.unique_topic("bomb")
        h.create_topic(h.admin(b.bootstrap), t)
        payload = bomb(shape)
        assert len(payload) < 2 << 20
        r = produce_raw(b.bootstrap, t, payload, 1)
        assert r is not None, "broker closed the connection instead of answering"
        assert r.error_code in (w.ERR_INVALID_RECORD, w.ERR_CORRUPT_MESSAGE, w.ERR_MESSAGE_TOO_LARGE), r
        assert h.watermarks(b.bootstrap, t) == (0, 0), "the bomb was appended"
        canary.check()
        canary.check_memory()
    finally:
        canary.close()
