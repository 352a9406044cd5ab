"""Minimal Kafka wire-format helpers for the raw-socket end-to-end tests.

Only what the hostile-input tests need: request framing (header v1, i.e. the
non-flexible header), a handful of request bodies, response parsing for the
replies we assert on, and record batch v2 encoding including CRC-32C.

Everything is written from the public protocol description; no client library
is used here so the tests control every byte that goes on the wire.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from dataclasses import dataclass

# --- API keys and error codes used by the tests -----------------------------

PRODUCE = 0
METADATA = 3
API_VERSIONS = 18

ERR_NONE = 0
ERR_CORRUPT_MESSAGE = 2
ERR_MESSAGE_TOO_LARGE = 10
ERR_UNSUPPORTED_VERSION = 35
ERR_INVALID_RECORD = 87

# --- primitive encoders ------------------------------------------------------


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    """Non-flexible STRING / NULLABLE_STRING (int16 length prefix)."""
    if s is None:
        return i16(-1)
    b = s.encode("utf-8")
    return i16(len(b)) + b


def nbytes(b: bytes | None) -> bytes:
    """Non-flexible BYTES / NULLABLE_BYTES (int32 length prefix)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(z: int) -> bytes:
    """Unsigned varint (flexible versions' lengths and tagged-field counts)."""
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag encoded signed varint (as used inside record batches v2)."""
    z = (v << 1) ^ (v >> 63)
    return uvarint(z & ((1 << 64) - 1))


def compact_string(s: str | None) -> bytes:
    """Flexible COMPACT_(NULLABLE_)STRING (unsigned varint length + 1; 0 = null)."""
    if s is None:
        return b"\x00"
    b = s.encode("utf-8")
    return uvarint(len(b) + 1) + b


# --- CRC-32C (Castagnoli), table driven --------------------------------------

def _make_crc32c_table() -> list[int]:
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C self-check failed"

# --- record batch v2 ---------------------------------------------------------

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1


def encode_record(offset_delta: int, key: bytes | None, value: bytes | None,
                  timestamp_delta: int = 0, headers: list[tuple[str, bytes]] = ()) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes (unused)
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    for field in (key, value):
        if field is None:
            body += varint(-1)
        else:
            body += varint(len(field)) + field
    body += varint(len(headers))
    for hk, hv in headers:
        kb = hk.encode("utf-8")
        body += varint(len(kb)) + kb
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_header_prefix(offset_delta: int, value_len: int, key: bytes | None = None) -> bytes:
    """The bytes of one record up to (not including) its value payload.

    Lets callers stream a huge value (e.g. zeros for a compression bomb) into a
    compressor without ever holding the whole record in memory. The record has
    no headers; the caller must append the value bytes and then ``varint(0)``.
    """
    after_len = bytearray()
    after_len += i8(0)
    after_len += varint(0)  # timestamp delta
    after_len += varint(offset_delta)
    after_len += varint(-1) if key is None else varint(len(key)) + key
    after_len += varint(value_len)
    total = len(after_len) + value_len + len(varint(0))
    return varint(total) + bytes(after_len)


def encode_batch(records_payload: bytes, record_count: int, *, base_timestamp: int,
                 compression: int = COMPRESSION_NONE, base_offset: int = 0,
                 max_timestamp: int | None = None, producer: tuple[int, int, int] = (-1, -1, -1),
                 transactional: bool = False) -> bytes:
    """Wrap an already encoded (and possibly compressed) records payload into a
    record batch v2 with a correct CRC-32C. ``producer`` is (producer id, epoch,
    base sequence) of an idempotent batch; ``transactional`` sets attribute bit 4."""
    if max_timestamp is None:
        max_timestamp = base_timestamp
    attributes = compression | (0x10 if transactional else 0)
    # Everything from 'attributes' to the end is covered by the CRC.
    after_crc = (
        i16(attributes)             # attributes: codec, create-time, transactional
        + i32(record_count - 1)     # last offset delta
        + i64(base_timestamp)
        + i64(max_timestamp)
        + i64(producer[0])          # producer id
        + i16(producer[1])          # producer epoch
        + i32(producer[2])          # base sequence
        + i32(record_count)
        + records_payload
    )
    crc = crc32c(after_crc)
    # batch length counts from partition leader epoch to the end.
    after_len = i32(-1) + i8(2) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(after_len)) + after_len


def simple_batch(values: list[bytes], *, key: bytes | None = b"k",
                 timestamp_ms: int | None = None, producer: tuple[int, int, int] = (-1, -1, -1),
                 transactional: bool = False) -> bytes:
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    payload = b"".join(encode_record(i, key, v) for i, v in enumerate(values))
    return encode_batch(payload, len(values), base_timestamp=timestamp_ms, producer=producer,
                        transactional=transactional)


# Offset of the CRC field inside a batch: base offset (8) + batch length (4)
# + partition leader epoch (4) + magic (1).
BATCH_CRC_OFFSET = 17


def gzip_bomb_batch(total_uncompressed: int, record_value_size: int,
                    timestamp_ms: int | None = None) -> bytes:
    """A gzip-compressed record batch whose records are all-zero values adding up
    to ``total_uncompressed`` bytes. Built by streaming zeros through a
    compressor, so neither side of the test ever materialises the full size."""
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    count = max(1, total_uncompressed // record_value_size)
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    chunk = memoryview(bytes(min(record_value_size, 1 << 20)))
    out = []
    for i in range(count):
        out.append(comp.compress(record_header_prefix(i, record_value_size)))
        left = record_value_size
        while left > 0:
            n = min(left, len(chunk))
            out.append(comp.compress(chunk[:n]))
            left -= n
        out.append(comp.compress(varint(0)))  # no headers
    out.append(comp.flush())
    payload = b"".join(out)
    return encode_batch(payload, count, base_timestamp=timestamp_ms,
                        compression=COMPRESSION_GZIP)


# --- requests ------------------------------------------------------------------


def request_header_v1(api_key: int, api_version: int, correlation_id: int,
                      client_id: str | None = "samsa-e2e") -> bytes:
    return i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def api_versions_request(version: int, correlation_id: int) -> bytes:
    """ApiVersions with a v1 (non-flexible) header and an empty body: what a
    client sends when probing; a broker that does not know ``version`` must
    still answer in the v0 body format."""
    return frame(request_header_v1(API_VERSIONS, version, correlation_id))


def metadata_v1_request(correlation_id: int, topics: list[str] | None) -> bytes:
    if topics is None:
        body = i32(-1)
    else:
        body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return frame(request_header_v1(METADATA, 1, correlation_id) + body)


def produce_v3_request(correlation_id: int, topic: str, partition: int, records: bytes,
                       acks: int = -1, timeout_ms: int = 10000) -> bytes:
    body = (
        string(None)          # transactional id
        + i16(acks)
        + i32(timeout_ms)
        + i32(1) + string(topic)
        + i32(1) + i32(partition) + nbytes(records)
    )
    return frame(request_header_v1(PRODUCE, 3, correlation_id) + body)


# --- responses -----------------------------------------------------------------


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"response truncated: need {n} bytes at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8")

    def array_len(self, limit: int = 100_000) -> int:
        n = self.i32()
        if n > limit:
            raise ValueError(f"implausible array length {n}")
        return n

    def remaining(self) -> int:
        return len(self.data) - self.pos


@dataclass
class ApiVersionsV0:
    correlation_id: int
    error_code: int
    apis: dict[int, tuple[int, int]]
    trailing: int  # bytes after the v0 body (a v1+ body would have throttle time here)


def parse_api_versions_v0(resp: bytes) -> ApiVersionsV0:
    """Parse an ApiVersions response as response header v0 + v0 body."""
    r = Reader(resp)
    cid = r.i32()
    err = r.i16()
    apis = {}
    for _ in range(r.array_len()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        apis[key] = (lo, hi)
    return ApiVersionsV0(cid, err, apis, r.remaining())


@dataclass
class MetadataV1:
    correlation_id: int
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    topics: dict[str, tuple[int, dict[int, tuple[int, int]]]]  # name -> (error, {partition: (error, leader)})


def parse_metadata_v1(resp: bytes) -> MetadataV1:
    r = Reader(resp)
    cid = r.i32()
    brokers = {}
    for _ in range(r.array_len()):
        node, host, port = r.i32(), r.string(), r.i32()
        r.string()  # rack
        brokers[node] = (host, port)
    controller = r.i32()
    topics = {}
    for _ in range(r.array_len()):
        err, name, _internal = r.i16(), r.string(), r.i8()
        parts = {}
        for _ in range(r.array_len()):
            perr, idx, leader = r.i16(), r.i32(), r.i32()
            for _ in range(r.array_len()):
                r.i32()  # replicas
            for _ in range(r.array_len()):
                r.i32()  # isr
            parts[idx] = (perr, leader)
        topics[name] = (err, parts)
    return MetadataV1(cid, brokers, controller, topics)


@dataclass
class ProducePartitionResult:
    error_code: int
    base_offset: int
    log_append_time: int


def parse_produce_v3(resp: bytes) -> tuple[int, dict[tuple[str, int], ProducePartitionResult]]:
    r = Reader(resp)
    cid = r.i32()
    out = {}
    for _ in range(r.array_len()):
        name = r.string()
        for _ in range(r.array_len()):
            idx, err, base, lat = r.i32(), r.i16(), r.i64(), r.i64()
            out[(name, idx)] = ProducePartitionResult(err, base, lat)
    r.i32()  # throttle time
    return cid, out


# --- socket helpers --------------------------------------------------------------


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out reading {n} bytes (got {len(buf)})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, timeout: float = 10.0, max_size: int = 64 << 20) -> bytes | None:
    """Read one size-prefixed response. None means the peer closed the connection."""
    deadline = time.monotonic() + timeout
    hdr = _recv_exact(sock, 4, deadline)
    if hdr is None:
        return None
    (n,) = struct.unpack(">i", hdr)
    if n < 0 or n > max_size:
        raise ValueError(f"implausible response size {n}")
    body = _recv_exact(sock, n, deadline)
    if body is None:
        raise ValueError("connection closed in the middle of a response")
    return body


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send; False if the broker already closed the connection (which is an
    acceptable reaction to hostile input)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True if the peer closes the connection (EOF or reset) within ``timeout``
    without sending anything; raises if it sends data instead of closing."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
        raise AssertionError(f"expected the connection to be closed, got {len(data)} bytes: {data[:64].hex()}")


def roundtrip(sock: socket.socket, request: bytes, timeout: float = 10.0) -> bytes | None:
    sock.sendall(request)
    return read_frame(sock, timeout)


def healthy_exchange(bootstrap: str, sock: socket.socket | None = None, correlation_id: int = 4242) -> MetadataV1:
    """ApiVersions v0 then Metadata v1 on ``sock`` (or a fresh connection), asserting
    sane answers. Returns the parsed metadata."""
    own = sock is None
    if own:
        sock = connect(bootstrap)
    try:
        resp = roundtrip(sock, api_versions_request(0, correlation_id))
        assert resp is not None, "broker closed a healthy connection on ApiVersions v0"
        av = parse_api_versions_v0(resp)
        assert av.correlation_id == correlation_id
        assert av.error_code == ERR_NONE, av
        assert API_VERSIONS in av.apis and PRODUCE in av.apis and METADATA in av.apis, av.apis
        resp = roundtrip(sock, metadata_v1_request(correlation_id + 1, None))
        assert resp is not None, "broker closed a healthy connection on Metadata v1"
        md = parse_metadata_v1(resp)
        assert md.correlation_id == correlation_id + 1
        assert md.brokers, "metadata lists no broker"
        return md
    finally:
        if own:
            sock.close()
