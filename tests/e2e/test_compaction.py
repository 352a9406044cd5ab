"""Log compaction end to end: the cleaner keeps the latest value per key,
removes tombstones after delete.retention.ms, and never reorders offsets."""

from __future__ import annotations

import time

import helpers as h

KEYS = [f"key-{i}".encode() for i in range(10)]
DELETED = KEYS[:3]
VERSIONS = 1000


def test_compacted_topic_keeps_latest_value_per_live_key(broker_factory):
    b = broker_factory("log.cleaner.backoff.ms=200")
    a = h.admin(b.bootstrap)
    t = h.unique_topic("compact")
    h.create_topic(a, t, config={
        "cleanup.policy": "compact",
        "segment.bytes": str(1024 * 1024),
        "segment.ms": "300",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })
    p = h.producer(b.bootstrap, linger_ms=5)
    pad = b"p" * 200
    items = [{"key": k, "value": b"%d:" % v + pad} for v in range(VERSIONS) for k in KEYS]
    log = h.produce_and_flush(p, items, t)
    assert not log.errors, log.errors[:3]
    # Each append after segment.ms rolls the segment, sealing what came before,
    # so the cleaner may work on it.
    time.sleep(0.4)
    log = h.produce_and_flush(p, [{"key": k, "value": None} for k in DELETED], t)
    assert not log.errors
    time.sleep(0.4)
    log = h.produce_and_flush(p, [{"key": b"marker", "value": b"m"}], t)
    assert not log.errors
    end = VERSIONS * len(KEYS) + len(DELETED) + 1

    # A keyless record is refused on a compacted topic (INVALID_RECORD).
    log = h.produce_and_flush(h.producer(b.bootstrap), [{"value": b"no key"}], t)
    assert log.errors and "INVALID_RECORD" in str(log.errors[0][0]), log.errors

    def compacted():
        got = h.consume_partitions(b.bootstrap, t, [0])[0]
        keys = [r.key for r in got]
        return got if len(keys) == len(set(keys)) and not any(r.key in DELETED for r in got) else None

    got = h.wait_until(compacted, timeout=60, interval=0.5, message="compaction down to one record per key")
    offsets = [r.offset for r in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets strictly increase"
    live = {r.key: r for r in got if r.key != b"marker"}
    assert set(live) == set(KEYS) - set(DELETED)
    last_round = (VERSIONS - 1) * len(KEYS)
    for k, r in live.items():
        assert r.value.startswith(b"%d:" % (VERSIONS - 1)), (k, r.value[:10])
        # The record kept is the one appended last for its key, at its original offset.
        assert r.offset == last_round + KEYS.index(k), (k, r.offset)
    assert h.watermarks(b.bootstrap, t) == (0, end), "compaction moves neither the start nor the end"
