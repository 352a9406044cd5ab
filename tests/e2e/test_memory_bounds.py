"""queued.max.request.bytes: a shared budget for request frames held in memory.

With a budget far smaller than the requests, concurrent producers take turns
(a frame larger than the whole budget waits until nothing else is held)
instead of failing or deadlocking, and nothing is lost or reordered.
"""

from __future__ import annotations

import threading

import helpers as h

PRODUCERS = 4
RECORDS = 3000


def test_tiny_request_budget_serialises_large_produce_requests(broker_factory):
    # 64 KiB of budget; librdkafka sends produce requests of up to ~1 MB.
    b = broker_factory("queued.max.request.bytes=65536")
    t = h.unique_topic("membudget")
    h.create_topic(h.admin(b.bootstrap), t, 4)
    logs: dict[int, h.DeliveryLog] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            p = h.producer(b.bootstrap, acks="all", linger_ms=50, batch_size=1000000)
            items = ({"key": f"{n}-{i}".encode(), "value": bytes([n]) * 1000, "partition": i % 4}
                     for i in range(RECORDS))
            logs[n] = h.produce_and_flush(p, items, t, timeout=60)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(PRODUCERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    for n in range(PRODUCERS):
        assert not logs[n].errors, logs[n].errors[:3]
        assert len(logs[n].ok) == RECORDS

    got = h.consume_partitions(b.bootstrap, t, range(4), timeout=60)
    assert sum(len(v) for v in got.values()) == PRODUCERS * RECORDS
    for part, records in got.items():
        assert [r.offset for r in records] == list(range(len(records))), f"partition {part} has gaps"
        # Each producer's records keep their order within a partition.
        for n in range(PRODUCERS):
            mine = [int(r.key.split(b"-")[1]) for r in records if r.key.startswith(f"{n}-".encode())]
            assert mine == sorted(mine), f"producer {n} reordered on partition {part}"
            assert all(r.value == bytes([n]) * 1000 for r in records if r.key.startswith(f"{n}-".encode()))
    b.assert_alive()
