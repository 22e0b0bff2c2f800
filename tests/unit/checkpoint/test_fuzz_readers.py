"""Seeded, bounded fuzzing of every reader (hostile input, promise 7 in docs/design.md): damaged copies of
real Spark checkpoints and of a job root's records, control files and snapshot go through the inspector, the
job root's record readers, the snapshot catalogue and verification, and the status command. The only error a
reader may raise is a ``CheckpointProviderError``; nothing outside the job root may change. The long run by
hand: ``python -m tests.support.fuzzing --inputs 100000`` (docs/reliability.md)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_checkpoint_provider.triggers.checkpoint import (
    BatchCommittedTrigger,
    DriverStartedTrigger,
    JobHealthyTrigger,
    StopAcknowledgedTrigger,
)
from tests.support.fuzzing import run_one, seed_trees

TRIGGERS = (DriverStartedTrigger, StopAcknowledgedTrigger, BatchCommittedTrigger, JobHealthyTrigger)

PAYLOAD_KEYS = tuple(
    sorted({key for cls in TRIGGERS for key in (*cls.common, *cls.fields)})
)  # every trigger's wire fields
LAUNCH_FLAGS = (
    "--acp-job-root",
    "--acp-generation",
    "--acp-snapshot",
    "--acp-starting-offsets",
    "--acp-heartbeat-s",
    "--acp-lease-s",
    "--acp-launch-id",
    "--acp-code-version",
    "--acp-bogus",
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path]]]:
    work = tmp_path_factory.mktemp("fuzz")
    yield work, seed_trees(work / "seeds")


@settings(
    max_examples=int(os.environ.get("ACP_FUZZ_EXAMPLES", "1500")),  # by hand: more
    derandomize=True,  # the same inputs on every run: a failure replays
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**63), mutations=st.integers(min_value=1, max_value=3))
def test_readers_raise_only_typed_errors_on_damaged_input(
    seeds: tuple[Path, dict[str, Path]], seed: int, mutations: int
) -> None:
    work, trees = seeds
    findings = run_one(work, trees, random.Random(seed), mutations)
    assert not findings, "\n".join(f"{f.reader} after {f.mutation}:\n{f.error}" for f in findings)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=int(os.environ.get("ACP_FUZZ_EXAMPLES", "300")), derandomize=True, deadline=None)
@given(payload=st.dictionaries(st.sampled_from(PAYLOAD_KEYS), JSON, max_size=8), which=st.integers(0, 3))
def test_a_damaged_trigger_payload_is_a_typed_error(payload: dict[str, object], which: int) -> None:
    """Airflow rebuilds a trigger from its stored kwargs: damaged ones fail with a typed error."""
    from airflow_checkpoint_provider.exceptions import CheckpointProviderError

    cls = TRIGGERS[which]
    allowed = {*cls.common, *cls.fields}
    kwargs = {k: v for k, v in payload.items() if k in allowed}
    try:
        trigger = cls(**kwargs)
    except CheckpointProviderError:
        return
    except TypeError as exc:  # a required argument missing altogether: Python's own call check
        assert "required keyword-only argument" in str(exc), exc
        return
    path, again = trigger.serialize()
    assert cls(**again).serialize() == (path, again)


@settings(max_examples=int(os.environ.get("ACP_FUZZ_EXAMPLES", "300")), derandomize=True, deadline=None)
@given(
    argv=st.lists(
        st.sampled_from(LAUNCH_FLAGS)
        | st.text(max_size=12)
        | st.sampled_from(["--", "1", "-1", "[]", "nan"]),
        max_size=10,
    )
)
def test_damaged_launch_arguments_are_a_typed_error(argv: list[str]) -> None:
    from airflow_checkpoint_provider.exceptions import InvalidLaunchError
    from airflow_checkpoint_provider.model.launch import parse_launch_args

    try:
        parse_launch_args(argv)
    except InvalidLaunchError:
        pass
