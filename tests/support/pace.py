"""How fast the tests' streaming jobs run their batches.

A batch of a test counter costs about 1.9 CPU-s (transformWithState or Spark's aggregation) and a DStream
batch about 2.8 CPU-s on a slow 2-core machine, whatever its size: Spark's fixed cost per batch, not the
events. At a 0.5 s trigger with continuous input the batches ran back to back at about 1.7 cores (measured
2026-12-01), and every standby, exporter, dry run or Airflow task beside the live job shared the 0.3 cores
left. At 2 s the live job uses about 1.0 core (an idle driver: about 0.08). ``ACP_TEST_TRIGGER_S`` and
``ACP_TEST_DSTREAM_BATCH_S`` change it for a run by hand.
"""

from __future__ import annotations

import os

#: The trigger interval of the Structured Streaming counters in the tests, in seconds (a string: an argument).
TRIGGER_S = os.environ.get("ACP_TEST_TRIGGER_S", "2")
#: The batch interval of the DStream counters in the tests, in seconds.
DSTREAM_BATCH_S = os.environ.get("ACP_TEST_DSTREAM_BATCH_S", "2")


def trigger_for(app: str) -> str:
    """The trigger (batch interval) for a test app: ``d…`` apps are DStream counters."""
    return DSTREAM_BATCH_S if app.startswith("d") else TRIGGER_S
