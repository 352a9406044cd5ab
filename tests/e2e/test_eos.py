"""Exactly-once consume-transform-produce across crashes of a single node
(issue 15's proof; the 3-node version is ``test_eos_cluster.py``).

The application and the checker are in ``eos_app.py`` (its module doc says
what the application does on errors and why it has a watchdog). While the
application runs, the broker is killed with SIGKILL ten times. Afterwards a
``read_committed`` consumer must find every input's output exactly once, and
the group's committed offsets must be the input's end offsets.
"""

from __future__ import annotations

import time

import pytest

import eos_app as eos
import helpers as h

ROUNDS = 10
INPUT_RECORDS = 12000
# 12000 inputs / eos.TXN_RECORDS_MAX = 600 transactions at least, so every
# crash round lands among committed ones.
# Small segments (a broker default: topic-level segment.bytes has a 1 MiB
# minimum) so the logs roll while transactions are open.
SEGMENT_BYTES = "4096"


@pytest.mark.timeout(600)
def test_consume_transform_produce_is_exactly_once_across_broker_kills(broker_factory):
    b = broker_factory(f"log.segment.bytes={SEGMENT_BYTES}")
    a = h.admin(b.bootstrap)
    src, dst, group = h.unique_topic("eos-in"), h.unique_topic("eos-out"), h.unique_topic("eos-group")
    for t in (src, dst):
        h.create_topic(a, t, partitions=eos.INPUT_PARTITIONS)
    inputs = eos.fill_input(b.bootstrap, src, INPUT_RECORDS)

    def crash(rnd: int, app: eos.EosApp) -> str:
        b.kill()
        time.sleep(0.2)
        b.start()
        return "the broker"

    app = eos.EosApp(b.bootstrap, src, dst, group, eos.INPUT_PARTITIONS).start()
    try:
        eos.run_through_crashes(app, ROUNDS, crash, "single node")
        eos.wait_caught_up(app, lambda: b.bootstrap, inputs)
    finally:
        app.stop()
        print("\n" + app.summary("single node"))
    eos.check_output(b.bootstrap, inputs, dst, "single node")
    b.assert_alive()
