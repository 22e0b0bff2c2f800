"""Exactly-once under faults: a seeded campaign of redeploys with code changes, kill -9 of drivers, warm
standbys (before and after their go) and exporters at random moments, a concurrent second redeploy, and a
failed upgrade that must roll back, all
through the example DAGs on real local Spark. At the end the job's final state and the sink's output equal
the fold of the event log, key by key.

CI runs a small campaign for each engine (``ACP_CAMPAIGN_OPS``, default 10, for Structured Streaming;
``ACP_CAMPAIGN_DSTREAM_OPS``, default 6, for the DStream counters; never fewer than the required faults, each
drawn once in every plan; seed ``ACP_CAMPAIGN_SEED``); the seed and the sequence are printed first, so a
failure replays with the same seed. ``ACP_CAMPAIGN_ENGINE`` runs one engine (``structured``, ``dstream`` or
``mixed``) instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.campaign import ENGINES, REQUIRED, plan, run_campaign
from tests.support.drivers import Job

pytestmark = [pytest.mark.spark, pytest.mark.airflow]

SEED = int(os.environ.get("ACP_CAMPAIGN_SEED", "20261122"))
OPS = int(os.environ.get("ACP_CAMPAIGN_OPS", "10"))
DSTREAM_OPS = int(os.environ.get("ACP_CAMPAIGN_DSTREAM_OPS", "6"))
ONLY = os.environ.get("ACP_CAMPAIGN_ENGINE")
RUNS = [(ONLY, OPS)] if ONLY else [("structured", OPS), ("dstream", DSTREAM_OPS)]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def test_plan_replays_from_its_seed_and_holds_every_required_fault() -> None:
    for engine, apps in ENGINES.items():
        for seed in range(50):
            steps = plan(seed, 6, apps)
            assert [s.describe() for s in steps] == [s.describe() for s in plan(seed, 6, apps)]
            kinds = [s.kind for s in steps]
            assert len(steps) == max(6, len(REQUIRED)) and all(kind in kinds for kind in REQUIRED), engine
            deployed = [apps[0]] + [s.app for s in steps if s.app]
            assert set(deployed) <= set(apps)
            assert any(a != b for a, b in zip(deployed, deployed[1:], strict=False)), deployed


@pytest.mark.timeout(300 + 150 * max(OPS, DSTREAM_OPS))  # ~50 s an operation on 2 cores
@pytest.mark.parametrize(("engine", "ops"), RUNS, ids=[engine for engine, _ in RUNS])
def test_fault_campaign_totals_equal_the_event_log(
    run_dir: Path, airflow_db: Path, engine: str, ops: int
) -> None:
    job = Job(run_dir / f"campaign-{engine}-{SEED}", run_dir)
    result = run_campaign(job, run_dir, SEED, ops, say=say, engine=engine)
    campaign = result["campaign"]
    replay = (
        f"replay: ACP_CAMPAIGN_SEED={SEED} ACP_CAMPAIGN_OPS={ops} ACP_CAMPAIGN_ENGINE={engine}; "
        f"{campaign.header()}"
    )
    say(
        f"fault campaign done in {result['seconds']}s: {result['end']} events, {len(result['fold'])} keys, "
        f"final generation {result['generation']} at batch {result['batch']}, {campaign.redeploys} redeploys"
    )
    assert result["state"] == result["fold"], replay  # the final state: nothing lost, nothing counted twice
    assert result["sink"] == result["fold"], replay  # what the sink's readers see
    assert job.root.generations() == list(range(1, campaign.redeploys + 2)), (
        replay
    )  # one generation per redeploy
