"""Safe upgrades through ``example_safe_redeploy`` (``dag.test()``) on real local Spark, continuous input.

One job, one event producer, in order:

1. A dry run of v2 beside the running v1 (keeping its scratch): every file it wrote is under its scratch
   folder (audited by modification time over the whole job root and sink), and the job's ledger, generation
   records, snapshots and sink are untouched by it.
2. A release whose migration forgets a column: the plan refuses it; nothing else runs.
3. A release that crashes in its second batch: the dry run catches it; the job is untouched.
4. A release that writes wrong counts: the dry run's user check catches it.
5. The crashing release again, dry run off: the cutover happens, the readiness window sees the failure, and
   the rollback starts v1 again as a new generation from the cutover's snapshot.
6. A good release (v2): every step passes, and the dry run's driver becomes the standby (one JVM for both).
7. A checkpoint rotation (same release, ``intent="rotate"``): a fresh generation from a snapshot; its dry
   run's driver is killed (``kill -9``) as soon as it offers itself as the standby, so the standby task
   launches one of its own and nothing is left in scratch.
8. A release that changes only a setting (the trigger): the plan's resume branch stops generation 5 and
   restarts it on its own checkpoint with the new setting; the readiness window passes.
9. A setting its driver cannot start with: the restart fails and the rollback puts the previous settings
   back, on the same generation.

Totals are exact at the end (the rolled-back generation's output skipped, as a consumer skips it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.upgrade import rolled_back_generations
from airflow_checkpoint_provider.cli import main as cli
from tests.support.campaign import Chaos
from tests.support.counting import fold_log, sink_totals
from tests.support.drivers import ROOT, Job, Producer
from tests.support.lifecycle import example_params, file_mtimes, kill_drivers, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]

BAD = ROOT / "tests" / "support" / "apps" / "bad_counter.py"
BAD_SCHEMA = ROOT / "tests" / "support" / "apps" / "bad_schema_counter.py"


def _bad(job: Job, run_dir: Path, app: Path, *extra: str, **conf: Any) -> dict[str, Any]:
    params = example_params(job, run_dir, "v2", **conf)
    return {
        **params,
        "application": str(app),
        "code_version": app.stem,
        "application_args": [*params["application_args"], *extra],
    }


def _with_args(params: dict[str, Any], flag: str, value: str) -> dict[str, Any]:
    """The same release with one application argument changed (a setting, not code)."""
    args = list(params["application_args"])
    args[args.index(flag) + 1] = value
    return {**params, "application_args": args}


def _safe(job: Job, run_dir: Path, params: dict[str, Any], **conf: Any) -> dict[str, Any]:
    return {**params, "dry_run": True, "intent": "upgrade", "readiness_window_s": 12, "standby": True, **conf}


def _untouched(job: Job) -> dict[str, Any]:
    """What a dry run must leave as it was: the ledger, every generation record, the snapshots."""
    root = job.root
    records = {g: (Path(root.generation_record_file(g).uri)).read_bytes() for g in root.generations()}
    snapshots = sorted(p.name for p in Path(root.snapshots_dir().uri).iterdir())
    ledger = JobLedger(root).read()
    return {
        "records": records,
        "snapshots": snapshots,
        "current": ledger.current_generation,
        "history": len(ledger.history),
    }


def _kill_scratch_driver(scratch: Path) -> str | None:
    """``kill -9`` the process group of the dry run's driver in ``scratch`` (its scratch job's launch)."""
    for record in scratch.glob("*/job/generations/*/generation.json"):
        for launch in json.loads(record.read_text()).get("launches", []):
            try:
                os.killpg(int(launch["pid"]), signal.SIGKILL)
                return f"pid {launch['pid']}"
            except ProcessLookupError:
                pass
    return None


def _written_since(folder: Path, since: float) -> list[Path]:
    return [p for p, t in file_mtimes(folder).items() if t >= since]


def test_bad_releases_are_caught_before_or_after_the_cutover_and_totals_stay_exact(
    run_dir: Path, airflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import example_job_control
    from example_safe_redeploy import dag as safe

    from tests.dags.acp_safe_upgrade_dags import dry_run_audit, snapshot_now

    job = Job(run_dir / "e2e-safe", run_dir)
    v1 = example_params(job, run_dir, "v1")
    try:
        with Producer(job.events):
            started = example_job_control.start_job.test(run_conf=v1)
            assert started.state == "success", states(started)
            wait_for(lambda: job.committed(1) >= 2, 120, "generation 1 to commit batch 2")
            snapped = snapshot_now.test(run_conf=v1)
            assert snapped.state == "success", states(snapped)

            # 1. the dry run of a good v2 writes only under its scratch folder
            before = _untouched(job)
            t0 = time.time()
            audit = dry_run_audit.test(run_conf=_safe(job, run_dir, example_params(job, run_dir, "v2")))
            assert audit.state == "success", states(audit)
            report = xcom(audit, "dry_run")
            assert report["passed"] and report["batches"] >= 2 and report["input_rows"] > 0, report
            assert report["generation"] == 2 and report["stop"].startswith("stopped"), report
            scratch = Path(report["scratch"])
            assert scratch.parent == job.path / "scratch"
            outside = [
                p
                for p in _written_since(job.path, t0) + _written_since(job.output, t0)
                if not p.is_relative_to(scratch)
                and not p.is_relative_to(job.path / "generations" / "1")  # the live driver's own
                and not p.is_relative_to(job.output / "g=1")  # the live job's sink output
            ]
            assert outside == [], outside
            assert _untouched(job) == before
            assert not (job.path / "generations" / "2").exists() and not (job.output / "g=2").exists()
            assert list((scratch / "output").glob("*/g=2/batch=*/_SUCCESS")), "no scratch sink output"
            assert list((scratch / "job" / "generations" / "2" / "checkpoint" / "commits").iterdir())
            shutil.rmtree(scratch)

            # 2. the plan refuses a migration that leaves the state short of a column
            refused = safe.test(run_conf=_safe(job, run_dir, _bad(job, run_dir, BAD_SCHEMA)))
            got = states(refused)
            assert refused.state == "failed" and got["plan"] == "failed", got
            assert got["dry_run"] == "upstream_failed" and got["stop"] == "upstream_failed", got
            assert xcom(refused, "rollback") == {"rolled_back": None, "generation": 1}
            capsys.readouterr()
            assert cli(["plan", str(job.path), "--application", str(BAD_SCHEMA), "--code-version", "x"]) == 1
            assert "after migration 'auto' is (key string, n bigint, total bigint)" in capsys.readouterr().out

            # 3. a release that crashes in its second batch: caught by the dry run
            crashed = safe.test(
                run_conf=_safe(job, run_dir, _bad(job, run_dir, BAD, "--bad", "crash-batch-1"))
            )
            got = states(crashed)
            assert crashed.state == "failed" and got["dry_run"] == "failed", got
            assert got["standby"] == "upstream_failed" and got["stop"] == "upstream_failed", got

            # 4. a release with wrong output: caught by the dry run's check
            wrong = safe.test(run_conf=_safe(job, run_dir, _bad(job, run_dir, BAD, "--bad", "zero-counts")))
            got = states(wrong)
            assert wrong.state == "failed" and got["dry_run"] == "failed", got
            assert JobLedger(job.root).read().current_generation == 1 and job.root.generations() == [1]
            assert not list((job.path / "scratch").glob("*")), "a dry run left scratch behind"
            status1 = job.status(1)
            assert status1 is not None and status1.state == "RUNNING", status1

            # 5. the crash again, no dry run: the readiness window catches it and the rollback restores v1
            bad = _bad(job, run_dir, BAD, "--bad", "crash-batch-1")
            rolled = safe.test(run_conf=_safe(job, run_dir, bad, dry_run=False))
            got = states(rolled)
            assert rolled.state == "failed" and got["rollback"] == "success", got
            assert "failed" in (got["ready"], got["start"]), got
            back = xcom(rolled, "rollback")
            assert back["rolled_back"] == 2 and back["generation"] == 3, back
            record3 = job.root.read_generation_record(3) or {}
            assert record3["code_version"] == "event-counter-v1" and record3["rolled_back_from"] == 2
            assert record3["snapshot"] == (job.root.read_generation_record(2) or {})["snapshot"]
            assert rolled_back_generations(job.root) == [2]
            events = [h["event"] for h in JobLedger(job.root).read().history]
            assert "rolled_back" in events
            capsys.readouterr()  # what the DAG runs printed
            assert cli(["status", str(job.path), "--json"]) == 0
            status = json.loads(capsys.readouterr().out)
            assert [g["rolled_back_to"] for g in status["generations"]] == [None, 3, None]
            wait_for(lambda: job.committed(3) >= 2, 120, "the rollback generation to commit batch 2")

            # 6. a good release goes through every check
            good = safe.test(run_conf=_safe(job, run_dir, example_params(job, run_dir, "v2")))
            assert good.state == "success", states(good)
            assert xcom(good, "plan")["action"] == "redeploy"
            dry = xcom(good, "dry_run")
            assert dry["passed"] is True and dry["adoptable"], dry
            assert xcom(good, "ready")["ready"] is True
            assert JobLedger(job.root).read().current_generation == 4
            # the dry run's driver became the standby: one JVM for both, and nothing left in scratch
            standby = xcom(good, "standby")
            assert standby["adopted"] is True and standby["launch_id"] == dry["launch_id"], standby
            launches = (job.root.read_generation_record(4) or {})["launches"]
            assert [(x["launch_id"], x.get("adopted")) for x in launches] == [(dry["launch_id"], "dry run")]
            log = Path(launches[0]["log_path"])
            assert log.is_relative_to(job.path / "generations" / "4") and log.is_file(), log
            assert "adopted: running on as the warm standby" in log.read_text()
            assert "dry_run_adopted" in [h["event"] for h in JobLedger(job.root).read().history]
            assert not list((job.path / "scratch").glob("*")), "the adopted dry run left scratch behind"
            capsys.readouterr()
            assert cli(["status", str(job.path), "--json"]) == 0
            fourth = next(
                g for g in json.loads(capsys.readouterr().out)["generations"] if g["generation"] == 4
            )
            # it started as generation 4 when it was adopted, not when it was submitted as the dry run
            assert fourth["adopted"] is True and fourth["started_at"] > launches[0]["submitted_at"], fourth

            # 7. a checkpoint rotation: the same release, a fresh generation from a snapshot; the dry run's
            # driver dies while it waits to be adopted, and a standby of its own is launched
            v2 = example_params(job, run_dir, "v2")
            with Chaos(
                "the dry run's driver, waiting to be adopted",
                lambda: bool(list((job.path / "scratch").glob("*/job/generations/*/control/adoptable.json"))),
                lambda: _kill_scratch_driver(job.path / "scratch"),
                0.0,
            ) as chaos:
                rotated = safe.test(run_conf=_safe(job, run_dir, v2, intent="rotate"))
            assert rotated.state == "success", states(rotated)
            assert "killed" in chaos.outcome, chaos.outcome
            assert xcom(rotated, "standby")["adopted"] is False, xcom(rotated, "standby")
            assert [x.get("adopted") for x in (job.root.read_generation_record(5) or {})["launches"]] == [
                None
            ]
            assert not list((job.path / "scratch").glob("*")), "a killed dry run left scratch behind"
            plan = xcom(rotated, "plan")
            assert plan["action"] == "redeploy" and "rotation was asked" in plan["reason"], plan
            assert JobLedger(job.root).read().current_generation == 5
            assert (job.root.read_generation_record(5) or {})["code_version"] == "event-counter-v2"
            assert (job.root.read_generation_record(4) or {}).get("retired_at")

            # 8. only a setting changes (the trigger): the resume branch restarts generation 5 with it
            wait_for(lambda: job.committed(5) >= 1, 120, "generation 5 to commit batch 1")
            slower = _with_args(v2, "--trigger-seconds", "3")
            resumed = safe.test(run_conf=_safe(job, run_dir, slower))
            got = states(resumed)
            assert resumed.state == "success", got
            assert xcom(resumed, "plan")["action"] == "resume"
            assert (
                got["baseline"] == "skipped" and got["stop"] == "skipped" and got["rollback"] == "skipped"
            ), got
            assert (
                xcom(resumed, "resume_start")["mode"] == "resume" and xcom(resumed, "ready")["ready"] is True
            )
            record5 = job.root.read_generation_record(5) or {}
            assert record5["application_args"] == slower["application_args"] + ["--migration", "auto"]
            assert job.root.generations() == [1, 2, 3, 4, 5]

            # 9. a setting its driver cannot start with: the rollback restarts it with the ones before
            broken = safe.test(run_conf=_safe(job, run_dir, _with_args(v2, "--trigger-seconds", "soon")))
            got = states(broken)
            assert broken.state == "failed" and got["resume_start"] == "failed", got
            assert got["rollback"] == "success" and got["redeploy_failed"] == "failed", got
            assert xcom(broken, "rollback") == {"rolled_back": None, "settings_reverted": 5, "generation": 5}
            record5 = job.root.read_generation_record(5) or {}
            assert record5["application_args"] == slower["application_args"] + ["--migration", "auto"]
            events = [h["event"] for h in JobLedger(job.root).read().history if "settings" in h["event"]]
            assert events == ["settings_applied", "settings_applied", "settings_reverted"], events
            assert job.root.generations() == [1, 2, 3, 4, 5]
            wait_for(lambda: (s := job.status(5)) is not None and s.state == "RUNNING", 120, "generation 5")

            stopped = example_job_control.stop_job.test(run_conf=example_params(job, run_dir, "v2"))
            assert stopped.state == "success", states(stopped)
            final = xcom(stopped, "stop")
    finally:
        kill_drivers(job.path)
    end = int(final["end_offsets"][0]["offset"])
    assert sink_totals(job.output, skip=rolled_back_generations(JobRoot(str(job.path)))) == fold_log(
        job.events, end
    )
