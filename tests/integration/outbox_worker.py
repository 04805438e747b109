"""A stand-in appliance process for the outbox fault test: ``python -m tests.integration.outbox_worker``.

It opens the store with a signing event builder, runs the real ``Publisher`` + ``MqttSink`` and
writes the crossings ``c00000`` .. ``c{N-1}`` at a steady rate, resuming after the last crossing
the store committed. Once every crossing is written and delivered it stops the publisher and
exits 0. The fault test SIGKILLs it at random moments and starts it again.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from appliance.lanes.crossing import Crossing, FieldResult
from appliance.publish.events import VerdictEventBuilder, load_signing_key
from appliance.publish.mqtt_sink import MqttSink
from appliance.publish.publisher import Publisher, RetryPolicy
from appliance.store.db import Store
from appliance.verdicts.rules import Verdict

GATE, BOX, LANE = "VNHNG", "box-1", "l1"
log = logging.getLogger("outbox_worker")
POLICY = RetryPolicy(batch=100, ack_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.5, idle_poll_s=0.05)


def crossing(i: int) -> Crossing:
    return Crossing(id=f"c{i:05d}", lane_id=LANE, started_at=1000.0 + i, ended_at=1001.0 + i,
                    tractor_plate=FieldResult("12C-123.45", 0.9, 2))


def next_crossing(store: Store) -> int:
    """One past the last committed crossing (ids and end times grow together)."""
    last = store.list_crossings(limit=1)
    return 0 if not last else int(last[0].id[1:]) + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--crossings", type=int, required=True)
    ap.add_argument("--rate", type=float, default=250.0, help="crossings per second")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    store = Store(args.db, args.db.parent / "evidence",
                  event_builder=VerdictEventBuilder(GATE, BOX, load_signing_key(args.key)))
    sink = MqttSink("central", "127.0.0.1", args.port, gate=GATE, box_id=BOX, lane_id=LANE, reconnect_max_s=1)
    publisher = Publisher(store, [sink], default_policy=POLICY)
    publisher.start()
    first = next_crossing(store)
    log.info("worker: resuming at crossing %d", first)
    start = time.monotonic()
    for i in range(first, args.crossings):
        delay = start + (i - first) / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        store.save_crossing(crossing(i), Verdict("CLEAR", (), None))
    while store.outbox_status()[0].backlog > 0:
        time.sleep(0.05)
    publisher.stop()
    store.close()
    log.info("worker: all %d crossings written and delivered", args.crossings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
