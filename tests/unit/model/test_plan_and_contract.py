"""The plan step's rule and the application contract it reads (no JVM, no Airflow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.contract import AppContract, parse_ddl, read_contract
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.model.plan import (
    Deployment,
    Intent,
    PlanAction,
    SnapshotShape,
    plan_redeploy,
)
from tests.support.drivers import APPS, ROOT

V1 = [("key", "string"), ("n", "bigint"), ("total", "bigint")]
V3 = [("key", "string"), ("sum", "bigint"), ("sum_2", "bigint"), ("max", "bigint"), ("max_2", "int")]
CURRENT = Deployment(
    application="/apps/v1.py",
    code_version="v1",
    application_sha256="a" * 64,
    conf={"spark.sql.shuffle.partitions": "3", "spark.executor.memory": "1g"},
)


def shape(parts: list[tuple[str, str]] = V1, sources: int = 1) -> SnapshotShape:
    return SnapshotShape("s1", 1, {"counts": parts}, sources)


def plan(proposed: Deployment, **kw: object) -> PlanAction:
    got = plan_redeploy(job="j", generation=1, current=CURRENT, proposed=proposed, **kw)  # type: ignore[arg-type]
    assert got.reason and "\n" not in got.reason
    return got.action


def test_ddl_parses_nested_types_and_aliases() -> None:
    assert parse_ddl("key STRING, m MAP<STRING, LONG>, x Integer") == [
        ("key", "string"),
        ("m", "map<string,long>"),
        ("x", "int"),
    ]
    with pytest.raises(ValueError, match="no type"):
        parse_ddl("key")


def test_nothing_changes_is_none_and_unpinned_settings_resume_in_place() -> None:
    assert plan(CURRENT) is PlanAction.NONE
    looser = replace(CURRENT, conf={**CURRENT.conf, "spark.executor.memory": "2g"})
    assert plan(looser) is PlanAction.RESUME
    assert plan(CURRENT, intent=Intent.ROTATE) is PlanAction.REDEPLOY


@pytest.mark.parametrize(
    "change",
    [
        {"code_version": "v2"},
        {"application_sha256": "b" * 64},  # same label, other file content
        {"conf": {**CURRENT.conf, "spark.sql.shuffle.partitions": "8"}},  # item 4: partitions
        {"conf": {**CURRENT.conf, "spark.sql.streaming.stateStore.providerClass": "x"}},
    ],
)
def test_what_the_checkpoint_pins_needs_a_redeploy(change: dict[str, object]) -> None:
    assert plan(replace(CURRENT, **change)) is PlanAction.REDEPLOY  # type: ignore[arg-type]


def test_the_plan_reads_the_shipped_contracts_and_checks_the_snapshot_shape() -> None:
    v2 = read_contract(str(APPS["v2"]))
    assert v2 is not None and v2.sources == 1
    new = Deployment(application=str(APPS["v2"]), code_version="event-counter-v2")
    for parts in (V1, V3, [*V1, ("max", "bigint")]):  # v1, v3 and v2 snapshots all migrate
        assert plan(new, contract=v2, shape=shape(parts)) is PlanAction.REDEPLOY
    assert plan(new, contract=v2, shape=shape(sources=2)) is PlanAction.REFUSE
    assert plan(new, contract=v2, shape=shape(), migration="v9_to_v2") is PlanAction.REFUSE
    assert plan(new, contract=v2, shape=shape(), migration="v1_to_v2") is PlanAction.REDEPLOY
    # the migration named "none": the snapshot must already have the declared shape
    assert plan(new, contract=v2, shape=shape(), migration="none") is PlanAction.REFUSE
    assert plan(new, contract=None, shape=shape()) is PlanAction.REDEPLOY  # the dry run checks instead


def test_a_migration_that_forgets_a_column_is_refused_with_both_shapes_named() -> None:
    bad = read_contract(str(ROOT / "tests" / "support" / "apps" / "bad_schema_counter.py"))
    got = plan_redeploy(
        job="j",
        generation=1,
        current=CURRENT,
        proposed=Deployment(application="bad.py", code_version="bad"),
        contract=bad,
        shape=shape(),
    )
    assert got.action is PlanAction.REFUSE
    assert "(key string, n bigint, total bigint)" in got.reason
    assert "(key string, n bigint, total bigint, max bigint)" in got.reason


def test_contract_is_read_without_importing_the_file(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("raise SystemExit('imported!')\nACP_CONTRACT = {'sources': 2, 'state': {}}\n")
    contract = read_contract(str(app))
    assert contract is not None and contract.sources == 2
    app.write_text("ACP_CONTRACT = dict(sources=1)\n")
    with pytest.raises(InvalidLaunchError, match="literal"):
        read_contract(str(app))
    app.write_text("ACP_CONTRACT = {'migrations': {'auto': {'counts': {'explode': 1}}}}\n")
    with pytest.raises(InvalidLaunchError, match="explode"):
        read_contract(str(app))
    app.write_text("print('no contract')\n")
    assert read_contract(str(app)) is None
    assert read_contract("s3://bucket/app.py") is None


def test_code_migrations_are_left_to_the_dry_run() -> None:
    contract = AppContract.parse(
        {"state": {"counts": "key STRING, n BIGINT"}, "migrations": {"auto": {"counts": "code"}}}
    )
    got = plan_redeploy(
        job="j",
        generation=1,
        current=CURRENT,
        proposed=Deployment(application="x.py", code_version="v9"),
        contract=contract,
        shape=shape(),
    )
    assert got.action is PlanAction.REDEPLOY
    assert any("checked by the dry run" in c for c in got.checks)


def test_the_launch_contract_carries_the_dry_run_output() -> None:
    spec = LaunchSpec(job_root="/j/scratch/x/job", generation=2, dry_run_output="/j/scratch/x/output")
    parsed, rest = parse_launch_args([*spec.to_args(), "--", "--events", "e"])
    assert parsed.dry_run_output == "/j/scratch/x/output" and rest == ["--events", "e"]
