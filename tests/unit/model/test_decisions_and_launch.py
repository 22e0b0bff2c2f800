from __future__ import annotations

import pytest

from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.decisions import StartMode, decide_start
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.model.offsets import starting_offset_options


@pytest.mark.parametrize(
    ("committed", "in_flight", "snapshot", "mode", "load"),
    [
        (None, None, None, StartMode.FIRST, False),
        (None, 0, None, StartMode.FIRST, False),
        (None, None, "s1", StartMode.FRESH_FROM_SNAPSHOT, True),
        (None, 0, "s1", StartMode.FRESH_FROM_SNAPSHOT, True),  # crash in batch 0: initial state again, once
        (0, None, "s1", StartMode.RESUME, False),  # promise 2: never after a commit
        (7, 8, "s1", StartMode.RESUME, False),
        (7, None, None, StartMode.RESUME, False),
    ],
)
def test_start_decision_table(
    committed: int | None, in_flight: int | None, snapshot: str | None, mode: StartMode, load: bool
) -> None:
    d = decide_start(
        generation=3, last_committed_batch=committed, in_flight_batch=in_flight, snapshot=snapshot
    )
    assert (d.mode, d.load_initial_state) == (mode, load)
    assert "generation 3" in d.reason


def test_launch_round_trip_and_app_args() -> None:
    spec = LaunchSpec(
        job_root="/jobs/counter",
        generation=2,
        snapshot="snap-1",
        starting_offsets=({"offset": 42},),
        code_version="v2",
    )
    parsed, rest = parse_launch_args([*spec.to_args(), "--", "--events", "/log"])
    assert parsed == spec
    assert parsed.job_name == "counter"
    assert rest == ["--events", "/log"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--acp-job-root", "/j"],
        ["--acp-job-root", "/j", "--acp-generation", "0"],
        ["--acp-job-root", "/j", "--acp-generation", "x"],
        ["--acp-job-root", "/j", "--acp-generation", "1", "--acp-starting-offsets", "{bad"],
        ["--acp-job-root", "/j", "--acp-generation", "1", "--acp-starting-offsets", "{}"],
        ["--acp-job-root", "/j", "--acp-generation", "1", "--acp-unknown", "1"],
    ],
)
def test_bad_launch_args(argv: list[str]) -> None:
    with pytest.raises(InvalidLaunchError):
        parse_launch_args(argv)


def test_starting_offset_mapping() -> None:
    assert starting_offset_options("eventlog", {"offset": 12}) == {"startingOffset": "12"}
    assert starting_offset_options("kafka", {"t": {"0": 5, "1": 9}}) == {
        "startingOffsets": '{"t":{"0":5,"1":9}}'
    }
    assert starting_offset_options("eventlog", None) == {}
    with pytest.raises(InvalidLaunchError):
        starting_offset_options("eventlog", {"offset": -1})
    with pytest.raises(InvalidLaunchError):
        starting_offset_options("socket", {"x": 1})
