"""The redeploy story through a real local Airflow deployment, the way a team runs Airflow: api-server,
scheduler, dag-processor and triggerer as processes, LocalExecutor, deferrable operators on (every wait runs
in the triggerer), runs triggered through the REST API with a login. Start v1 -> redeploy to v2 with the state
migration -> kill -9 the v2 driver -> the watchdog's callback brings it back from its checkpoint -> the
scheduled redeploy runs unattended: twice with the release that runs (nothing touched), then once after the
pipeline names v1 (a safe redeploy: plan, dry run, its driver adopted as the standby, cutover, readiness) ->
stop. Per-key totals equal the event log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from scripts.deployment import AirflowDeployment
from tests.support.browser import chromium, screenshot
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import example_params, kill_current_driver, kill_drivers
from tests.support.processes import ROOT, wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_the_redeploy_story_in_a_real_airflow_deployment(run_dir: Path) -> None:
    job = Job(run_dir / "real-deployment", run_dir)
    watched = {
        "AIRFLOW__CHECKPOINT_PROVIDER__JOB_ROOTS": str(job.path),  # the provider's UI page shows it
        "ACP_SCHEDULED_REDEPLOY_EVERY_S": "15",  # the scheduled redeploy looks for a release this often
    }
    with AirflowDeployment(
        run_dir / "deployment-home", ROOT / "dags", deferrable=True, env=watched
    ) as airflow:
        try:
            with Producer(job.events):

                def run(dag_id: str, conf: dict[str, object]) -> str:
                    run_id, state = airflow.run(dag_id, conf, timeout=600)
                    assert state == "success", (dag_id, airflow.task_states(dag_id, run_id))
                    return run_id

                airflow.wait_for_dag("example_snapshot_audit")
                airflow.request("PATCH", "/api/v2/dags/example_snapshot_audit", {"is_paused": False})
                run("example_start_job", example_params(job, run_dir, "v1"))
                wait_for(lambda: job.committed(1) >= 2, 240, "v1 to commit batch 2")

                redeploy = run("example_redeploy", example_params(job, run_dir, "v2", migration="v1_to_v2"))
                started = airflow.xcom("example_redeploy", redeploy, "start")
                assert started["generation"] == 2 and started["mode"] == "fresh_from_snapshot"
                stop = airflow.xcom("example_redeploy", redeploy, "stop")
                assert stop["outcome"] == "stopped" and stop["snapshot_id"]  # exported by the stopping driver
                assert airflow.xcom("example_redeploy", redeploy, "snapshot") == stop["snapshot_id"]
                links = airflow.request(
                    "GET", f"/api/v2/dags/example_redeploy/dagRuns/{redeploy}/taskInstances/start/links"
                )
                assert links["extra_links"]["Streaming job"] == f"/checkpoint/jobs/{job.path.name}", links
                wait_for(lambda: job.committed(2) >= 1, 240, "v2 to commit a batch")
                look_at_the_provider_page(airflow, job.path.name, stop["snapshot_id"])
                # The redeploy's snapshot was announced as an asset event: the audit DAG, scheduled on the
                # snapshots' asset alias, runs by itself in the real scheduler and receives its id.
                audit = wait_for_run(airflow, "example_snapshot_audit")
                assert airflow.xcom("example_snapshot_audit", audit, "audit") == [stop["snapshot_id"]]

                before = job.status(2)
                assert before is not None
                kill_current_driver(job, 2)
                watchdog, state = airflow.run("example_watchdog", {"job_root": str(job.path)}, timeout=600)
                assert state == "failed"  # the health check found the driver dead; its callback acted
                restart = (job.root.read_generation_record(2) or {})["launches"][-1]
                assert restart["by"].startswith("restart:example_watchdog/") and restart["mode"] == "resume"
                wait_for(
                    lambda: (
                        (s := job.status(2)) is not None
                        and s.launch_id == restart["launch_id"]
                        and s.state == "RUNNING"
                    ),
                    240,
                    "the restarted driver to run",
                )
                resumed = job.status(2)
                assert (
                    resumed is not None and resumed.query_id == before.query_id and resumed.snapshot is None
                )
                scheduled_redeploys(airflow, job, run_dir)
            # The producer has stopped: stop the job once it has read everything (a graceful stop drains).
            final_run = run("example_stop_job", example_params(job, run_dir, "v1"))
            final = airflow.xcom("example_stop_job", final_run, "stop")
        finally:
            kill_drivers(job.path)
    assert final["outcome"] == "stopped"
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))


def scheduled_redeploys(airflow: AirflowDeployment, job: Job, run_dir: Path) -> None:
    """``example_scheduled_redeploy`` in the real scheduler, every 15 s: the release Variable names what runs
    (two runs, each a no-op: the plan says so and the job is untouched), then v1 (one run redeploys), then v1
    with another trigger interval (one run takes the resume branch)."""
    dag_id = "example_scheduled_redeploy"
    running = example_params(job, run_dir, "v2", migration="v1_to_v2")  # what generation 2 was started with
    airflow.request("POST", "/api/v2/variables", {"key": "acp_release", "value": json.dumps(running)})
    generations, launches = job.root.generations(), len(job.root.read_generation_record(2)["launches"])
    airflow.wait_for_dag(dag_id)
    airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    noops = finished_runs(airflow, dag_id, 2)
    for run_id in noops:
        got = airflow.task_states(dag_id, run_id)
        assert got["plan"] == "skipped" and got["stop"] == "skipped", got
        assert airflow.xcom(dag_id, run_id, "plan", key="plan")["action"] == "none"
    assert job.root.generations() == generations and job.root.current_generation() == 2
    assert len(job.root.read_generation_record(2)["launches"]) == launches  # nothing relaunched
    release = example_params(job, run_dir, "v1")
    airflow.request(
        "PATCH", "/api/v2/variables/acp_release", {"key": "acp_release", "value": json.dumps(release)}
    )
    seen, got = first_run_doing(airflow, dag_id, len(noops), "redeploy")
    assert all(got[t] == "success" for t in ("plan", "dry_run", "stop", "start", "ready")), got
    assert got["resume_stop"] == "skipped", got
    current = job.root.current_generation()
    assert current == 3 and (job.root.read_generation_record(3) or {})["code_version"] == "event-counter-v1"
    # the dry run's driver became the standby, across two tasks the real scheduler ran
    adopted = [x.get("adopted") for x in (job.root.read_generation_record(3) or {})["launches"]]
    assert adopted == ["dry run"], adopted
    # A release that changes only a setting (the trigger): the plan's resume branch restarts generation 3
    # with it, in place, under the real scheduler's branching.
    settings = example_params(job, run_dir, "v1")
    args = settings["application_args"]
    args[args.index("--trigger-seconds") + 1] = "3"
    airflow.request(
        "PATCH", "/api/v2/variables/acp_release", {"key": "acp_release", "value": json.dumps(settings)}
    )
    _, got = first_run_doing(airflow, dag_id, seen, "resume")
    airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
    assert all(got[t] == "success" for t in ("plan", "resume_stop", "resume_start", "ready")), got
    assert got["baseline"] == "skipped" and got["stop"] == "skipped" and got["rollback"] == "skipped", got
    assert job.root.generations() == [1, 2, 3] and job.root.current_generation() == 3
    assert (job.root.read_generation_record(3) or {})["application_args"][: len(args)] == args


def first_run_doing(
    airflow: AirflowDeployment, dag_id: str, seen: int, action: str
) -> tuple[int, dict[str, str]]:
    """The first scheduled run after the ``seen`` finished ones whose plan is ``action`` (a run whose plan
    read the release Variable before it changed is one more no-op): how many runs have finished by then, and
    its task states."""
    first = seen
    while True:
        seen += 1
        run_id = finished_runs(airflow, dag_id, seen, timeout=900)[-1]
        got = airflow.task_states(dag_id, run_id)
        skipped = got["plan"] == "skipped"  # a no-op's plan skips the rest; its decision is under key "plan"
        done = airflow.xcom(dag_id, run_id, "plan", **({"key": "plan"} if skipped else {}))["action"]
        assert done == ("none" if skipped else action) and seen <= first + 3, (run_id, got)
        if not skipped:
            return seen, got


def finished_runs(airflow: AirflowDeployment, dag_id: str, count: int, timeout: float = 600) -> list[str]:
    """The ids of the first ``count`` runs of ``dag_id`` the scheduler made, once each has succeeded."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=logical_date")["dag_runs"]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        for r in done:
            assert r["state"] == "success", airflow.task_states(dag_id, r["dag_run_id"])
        if len(done) >= count:
            return [str(r["dag_run_id"]) for r in done[:count]]
        time.sleep(2)
    raise AssertionError(f"{dag_id}: fewer than {count} finished runs within {timeout:.0f}s")


def look_at_the_provider_page(airflow: AirflowDeployment, name: str, snapshot_id: str) -> None:
    """The provider's page on the real api-server, during the job's life: refused without a login; with
    one, the job list, the job page (both generations, the redeploy's snapshot), and the page inside
    Airflow's own UI. Screenshots go to test-artifacts/."""
    for path in ("/checkpoint/api/jobs", f"/checkpoint/api/jobs/{name}", "/checkpoint/"):
        try:
            urllib.request.urlopen(airflow.url + path, timeout=30)
            raise AssertionError(f"{path} answered without a login")
        except urllib.error.HTTPError as exc:
            assert exc.code in (401, 403), (path, exc.code)
    listed = airflow.request("GET", "/checkpoint/api/jobs")
    assert [(j["name"], j["health"], j["current_generation"]) for j in listed] == [(name, "RUNNING", 2)]
    with chromium() as browser:
        browser.get(airflow.url + "/checkpoint/")  # an origin to set the login cookie on
        browser.add_cookie({"name": "_token", "value": airflow.token(), "path": "/"})
        browser.get(f"{airflow.url}/checkpoint/jobs/{name}")
        page = browser.page_source
        assert "Generations" in page and "2 (current)" in page and "RETIRED" in page, page[:2000]
        assert snapshot_id in page and "verified" in page, page[:2000]
        screenshot(browser, "provider-job-page.png")
        browser.get(airflow.url + "/plugin/checkpoint-jobs")  # the navigation link inside Airflow's UI
        frame = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.TAG_NAME, "iframe"))[0]
        browser.switch_to.frame(frame)
        WebDriverWait(browser, 60).until(lambda b: name in b.page_source and "RUNNING" in b.page_source)
        browser.switch_to.default_content()
        screenshot(browser, "provider-page-in-airflow.png")


def wait_for_run(airflow: AirflowDeployment, dag_id: str, timeout: float = 300) -> str:
    """The run id of the first run of ``dag_id`` (triggered by the scheduler), once it has succeeded."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
        if runs:
            run_id = str(runs[0]["dag_run_id"])
            state = airflow.wait(dag_id, run_id, timeout=max(1.0, deadline - time.monotonic()))
            assert state == "success", airflow.task_states(dag_id, run_id)
            return run_id
        time.sleep(1)
    raise AssertionError(f"{dag_id} was not triggered within {timeout:.0f}s")
