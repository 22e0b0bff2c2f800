"""A seeded fault campaign against the example DAGs on real local Spark.

A seed gives a sequence of operations: redeploys that change the code (between v1, v2 and v3, each with its
state migration; v3 loads its state through its input, the others as initial state),
kill -9 of the driver at a random moment (the watchdog DAG brings it back from its checkpoint), kill -9 of the
exporter during a redeploy's snapshot, of the new driver during a start, of the old driver during a stop, of
the driver while the periodic snapshot reads it, a second redeploy started while one runs (the first one
deferrable: its waits run as triggers), and a failed upgrade (a release that crashes after the cutover: the
safe redeploy's readiness window rolls it back). A failed DAG run is
cleared and rerun, as an operator would. After the last operation the job is stopped and its final state and
the sink's output must equal the fold of the event log, key by key.

The sequence replays exactly from its seed; where in a batch a kill lands depends on timing, and each step's
log says what it hit. ``engine`` picks the code: ``structured`` (the Structured Streaming counters v1-v3),
``dstream`` (the DStream counters dv1-dv2: updateStateByKey + initialRDD) or ``mixed`` (redeploys move the job
between the two, through snapshots). Run by hand (longer)::

    ACP_CAMPAIGN_SEED=7 ACP_CAMPAIGN_OPS=30 ACP_CAMPAIGN_ENGINE=mixed \
        bash ./scripts/test.sh tests/e2e/test_fault_campaign.py -s
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pendulum
import pyarrow.parquet as pq

from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.processes import local_liveness
from airflow_checkpoint_provider.checkpoint.snapshots import read_manifest
from airflow_checkpoint_provider.checkpoint.upgrade import rolled_back_generations
from airflow_checkpoint_provider.model.backends import Liveness
from tests.support.counting import fold_log, sink_totals
from tests.support.drivers import Job
from tests.support.lifecycle import driver_pid, example_params, kill_driver, kill_drivers, states, xcom
from tests.support.processes import ROOT, wait_for

#: The code a redeploy deploys: the counter as Python transformWithState (v1: count and sum; v2: + max, loaded
#: as initial state) or as Spark's own aggregation (v3: the same as v2, its state seeded through its input).
APPS = ("v1", "v2", "v3")
#: The code each engine's campaign deploys; the first one starts the job.
ENGINES = {"structured": APPS, "dstream": ("dv1", "dv2"), "mixed": (*APPS, "dv1", "dv2")}
#: Every sequence holds each of these once (the faults the campaign exists for); the rest is drawn at random.
REQUIRED = (
    "redeploy+kill-exporter",
    "redeploy+kill-new-driver",
    "concurrent-redeploy",
    "kill-driver",
    "snapshot+kill-driver",
    "redeploy+kill-standby-before-go",
    "redeploy+kill-standby-after-go",
    "redeploy+kill-old-driver",  # during the handoff: between the stop request and the standby's go
    "failed-upgrade",  # a release that crashes after the cutover: the readiness window rolls it back
)
#: What the rest is drawn from, with weights.
MENU = {
    "redeploy": 3,
    "kill-driver": 3,
    "redeploy+kill-old-driver": 2,
    "redeploy+kill-exporter": 1,
    "redeploy+kill-new-driver": 1,
    "snapshot+kill-driver": 1,
    "redeploy+kill-standby-before-go": 1,
    "redeploy+kill-standby-after-go": 1,
}
#: The bad release a failed upgrade deploys: v2 that fails in its second batch (tests/support/apps).
BAD_RELEASE = ROOT / "tests" / "support" / "apps" / "bad_counter.py"
#: Seconds after the target appears at which the kill lands, drawn uniformly (what it can hit: see each
#: range).
DELAYS = {
    "kill-exporter": (
        0.0,
        1.5,
    ),  # the stopping driver exporting its final batch: state read, Parquet, manifest
    "kill-new-driver": (
        0.0,
        18.0,
    ),  # before the new driver reports, in batch 0, or after the start task returned
    "kill-old-driver": (0.0, 0.6),  # between the stop request and the acknowledgement (or just after it)
    "kill-driver": (0.0, 4.0),  # inside or between batches (a trigger every 2 s: tests/support/pace.py)
    # while the running driver exports on the snapshot request (it looks once a second and exports in about
    # a second; a DStream driver at its next completed batch)
    "snapshot+kill-driver": (0.0, 2.0),
    "kill-standby-before-go": (0.0, 3.0),  # after the standby reports warm: before or during the old's stop
    "kill-standby-after-go": (0.0, 3.0),  # after its go: loading the snapshot, in batch 0, or just after
}


@dataclass
class Step:
    kind: str
    app: str | None = None  # the code a redeploy deploys
    delay: float = 0.0  # when the kill lands, seconds after its target appeared

    def describe(self) -> str:
        target = f" -> {self.app}" if self.app else ""
        kill = f" @{self.delay:.1f}s" if "kill" in self.kind else ""
        return f"{self.kind}{target}{kill}"


def plan(seed: int, ops: int, apps: tuple[str, ...] = APPS) -> list[Step]:
    """The campaign's sequence: the required faults once each, the rest drawn from the menu, shuffled; each
    redeploy switches code with probability 0.7 (at least one switches)."""
    rng = random.Random(seed)
    APPS = apps  # noqa: N806 (the module's default, or an engine's apps)
    kinds = list(REQUIRED) + rng.choices(
        list(MENU), weights=list(MENU.values()), k=max(0, ops - len(REQUIRED))
    )
    rng.shuffle(kinds)
    steps, app, switched = [], APPS[0], False
    for kind in kinds:
        step = Step(kind)
        if "redeploy" in kind:
            if rng.random() < 0.7:
                app, switched = rng.choice([a for a in APPS if a != app]), True
            step.app = app
        fault = kind.split("+", 1)[1] if "+" in kind else kind
        if fault in DELAYS or kind in DELAYS:
            low, high = DELAYS.get(kind, DELAYS.get(fault, (0.0, 0.0)))
            step.delay = round(rng.uniform(low, high), 2)
        steps.append(step)
    if not switched:  # a campaign without a code change would not be one
        first = next(s for s in steps if s.app)
        for s in steps[steps.index(first) :]:
            if s.app:
                s.app = APPS[1]
    return steps


# --- processes
# ------------------------------------------------------------------------------------------------


def find_processes(*needles: str) -> list[int]:
    """Pids (not this process) whose command line holds every needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """kill -9 a process and everything under it (not its process group: the exporter shares the test's)."""
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def live_drivers(job: Job) -> list[tuple[int, int]]:
    """(generation, pid) of every driver launch of the job that still runs on this host."""
    alive = []
    for generation, record in job.root.generation_records().items():
        for launch in record.get("launches", []):
            if (
                launch.get("pid")
                and local_liveness(
                    int(launch["pid"]), str(launch.get("host", "")), str(launch.get("launch_id", ""))
                )
                is Liveness.ALIVE
            ):
                alive.append((int(generation), int(launch["pid"])))
    return alive


class Chaos:
    """In a thread: wait for a target to appear, wait ``delay`` more seconds, then kill it once."""

    def __init__(
        self,
        what: str,
        appeared: Callable[[], bool],
        kill: Callable[[], str | None],
        delay: float,
        timeout: float = 900,
    ) -> None:
        self.what, self.appeared, self.kill_fn, self.delay, self.timeout = (
            what,
            appeared,
            kill,
            delay,
            timeout,
        )
        self.outcome = f"{what}: never appeared"
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.appeared():
            if self._cancel.wait(0.05) or time.monotonic() > deadline:
                return
        seen = time.monotonic()
        if self._cancel.wait(self.delay):
            ended = time.monotonic() - seen
            self.outcome = f"{self.what}: the step ended {ended:.1f}s after it appeared, before the kill"
            return
        killed = self.kill_fn()
        self.outcome = (
            f"{self.what}: killed {killed} {time.monotonic() - seen:.1f}s after it appeared"
            if killed
            else f"{self.what}: gone before the kill at {self.delay:.1f}s"
        )


# --- the campaign
# ---------------------------------------------------------------------------------------------


@dataclass
class StepLog:
    index: int
    step: str
    outcome: str = ""
    dag_runs: list[str] = field(default_factory=list)
    generation: int | None = None
    seconds: float = 0.0


class Campaign:
    def __init__(
        self,
        job: Job,
        run_dir: Path,
        seed: int,
        ops: int,
        say: Callable[[str], None] = print,
        engine: str = "structured",
    ) -> None:
        self.job, self.run_dir, self.seed, self.engine = job, run_dir, seed, engine
        self.apps = ENGINES[engine]
        self.steps = plan(seed, ops, self.apps)
        self.say = say
        self.app = self.apps[0]
        self.log: list[StepLog] = []
        self.redeploys = 0

    def header(self) -> str:
        return f"fault campaign seed={self.seed} ops={len(self.steps)} engine={self.engine}: " + ", ".join(
            f"{i + 1}. {s.describe()}" for i, s in enumerate(self.steps)
        )

    def params(self, app: str) -> dict[str, Any]:
        return example_params(self.job, self.run_dir, app, migration="auto")

    @property
    def current(self) -> int:
        generation = JobLedger(self.job.root).read().current_generation
        assert generation is not None
        return generation

    # DAG runs
    # ------------------------------------------------------------------------------------------------

    def dag_run(self, dag: Any, conf: dict[str, Any], entry: StepLog, tries: int = 4) -> Any:
        """Run a DAG; clear and rerun the same run after a failure, up to ``tries`` times (``tries=1``: one
        run that may fail; None is returned then)."""
        logical_date = pendulum.now("UTC")
        for _ in range(tries):
            run = dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)
            entry.dag_runs.append(
                f"{dag.dag_id}: {run.state} {states(run)}"
                if run.state != "success"
                else f"{dag.dag_id}: success"
            )
            if run.state == "success":
                return run
        if tries == 1:
            return None
        raise AssertionError(f"{dag.dag_id} did not succeed after {tries} runs: {entry.dag_runs}")

    def wait_running(self, generation: int, after_batch: int | None = None, timeout: float = 240) -> None:
        def ok() -> bool:
            status = self.job.status(generation)
            return (
                status is not None
                and status.state == "RUNNING"
                and self.job.committed(generation) > (after_batch if after_batch is not None else -1)
            )

        wait_for(ok, timeout, f"generation {generation} to run and commit a batch")

    # steps
    # ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        import example_job_control

        entry = StepLog(0, f"start {self.app}")
        self.dag_run(example_job_control.start_job, self.params(self.app), entry)
        self.wait_running(1, 1)
        entry.generation = 1
        self.log.append(entry)

    def redeploy(self, step: Step, entry: StepLog) -> None:
        import example_redeploy

        old = self.current
        chaos: Chaos | None = None
        if (
            step.kind == "redeploy+kill-exporter"
        ):  # the export runs in the stopping driver (or its own application)
            chaos = Chaos(
                f"the export of generation {old}",
                lambda: self.exporting(old),
                lambda: self.kill_exporters() or self.kill(old),
                step.delay,
            )
        elif step.kind == "redeploy+kill-new-driver":
            chaos = Chaos(
                f"generation {old + 1}'s driver",
                lambda: driver_pid(self.job, old + 1) is not None,
                lambda: self.kill(old + 1),
                step.delay,
            )
        elif step.kind == "redeploy+kill-standby-before-go":
            chaos = Chaos(
                f"generation {old + 1}'s warm standby",
                lambda: (
                    (status := self.job.status(old + 1)) is not None
                    and status.state == "STANDBY"
                    and status.warm_s is not None
                ),
                lambda: self.kill(old + 1),
                step.delay,
            )
        elif step.kind == "redeploy+kill-standby-after-go":
            chaos = Chaos(
                f"generation {old + 1}'s standby after its go",
                lambda: (status := self.job.status(old + 1)) is not None and status.go_at is not None,
                lambda: self.kill(old + 1),
                step.delay,
            )
        elif step.kind == "redeploy+kill-old-driver":
            chaos = Chaos(
                f"generation {old}'s driver (stop requested)",
                lambda: self.job.root.read_stop_request(old) is not None,
                lambda: self.kill(old),
                step.delay,
            )
        if chaos is not None:
            with chaos:
                self.dag_run(example_redeploy.dag, self.params(str(step.app)), entry)
            entry.outcome = chaos.outcome
        else:
            self.dag_run(example_redeploy.dag, self.params(str(step.app)), entry)
        self.after_redeploy(old, str(step.app))

    def after_redeploy(self, old: int, app: str) -> None:
        self.redeploys += 1
        self.app = app
        assert self.current == old + 1, (self.current, old)
        record = self.job.root.read_generation_record(old + 1) or {}
        assert record.get("code_version") == self.params(app)["code_version"], record.get("code_version")
        self.wait_running(old + 1, 0)

    def failed_upgrade(self, entry: StepLog) -> None:
        """A safe redeploy (no dry run, no standby) to a release that fails in its second batch: the readiness
        window sees it, the rollback starts the code that ran before from the cutover's snapshot, and the DAG
        run fails (the release did not go out). Two generations: the bad one and the rollback's."""
        import example_safe_redeploy

        old = self.current
        good = self.params("v2")
        conf = {
            **good,
            "application": str(BAD_RELEASE),
            "code_version": "event-counter-v2-bad",
            "application_args": [*good["application_args"], "--bad", "crash-batch-1"],
            "dry_run": False,
            "standby": False,
            "intent": "upgrade",
            "readiness_window_s": 10,
        }
        run = self.dag_run(example_safe_redeploy.dag, conf, entry, tries=1)
        assert run is None, "a release that fails in its second batch went out"
        back = self.current
        record = self.job.root.read_generation_record(back) or {}
        assert back == old + 2 and record.get("rolled_back_from") == old + 1, (back, old, record)
        assert record.get("code_version") == self.params(self.app)["code_version"], record
        self.redeploys += 2
        entry.outcome = f"generation {old + 1} rolled back; generation {back} runs {self.app} again"
        self.wait_running(back, 0)

    def concurrent_redeploy(self, step: Step, entry: StepLog) -> None:
        import example_redeploy

        old = self.current
        log = self.run_dir / f"campaign-concurrent-{entry.index}.log"
        # The first one runs deferrable (Airflow's operators.default_deferrable): its waits run as triggers.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "dags"), str(ROOT)]),
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true",
        }
        with open(log, "wb") as out:
            first = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "scripts" / "run_dag.py"),
                    "example_redeploy",
                    "example_redeploy",
                    json.dumps(self.params(str(step.app))),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            wait_for(
                lambda: (
                    (lease := JobLedger(self.job.root).read().lease) is not None
                    and lease.holder.startswith("example_redeploy/")
                ),
                180,
                "the first redeploy to take the lease",
                first,
                log,
            )
            second = example_redeploy.dag.test(run_conf=self.params(str(step.app)))
            second_states = states(second)
            entry.dag_runs.append(f"second example_redeploy: {second.state} {second_states}")
            # its first task fails on the lease (the standby's, or the stop's when the standby is off)
            first_task = "standby" if second_states.get("standby") == "failed" else "stop"
            assert second.state == "failed" and second_states[first_task] == "failed", second_states
            assert second_states["start"] == "upstream_failed", second_states
            assert first.wait(timeout=900) == 0, log.read_text()[-4000:]
        finally:
            if first.poll() is None:
                first.kill()
        outcome = json.loads(log.read_text().splitlines()[-1])
        entry.dag_runs.insert(0, f"first example_redeploy (deferrable): {outcome['state']}")
        stop = outcome["tasks"]["stop"][
            "result"
        ]  # through StopAcknowledgedTrigger: the driver's own snapshot
        assert stop["snapshot_id"] and stop["snapshot_id"] == outcome["tasks"]["snapshot"]["result"], outcome
        entry.outcome = "the second redeploy failed on the lease; the first (deferrable) completed"
        self.after_redeploy(old, str(step.app))

    def kill_and_recover(self, step: Step, entry: StepLog) -> None:
        """kill -9 the running driver (at a random moment, or while the periodic snapshot reads it); the
        watchdog DAG's health check fails and its callback restarts the generation from its own checkpoint."""
        import example_periodic_snapshot
        import example_watchdog

        generation = self.current
        before = self.job.committed(generation)
        dstream = self.app.startswith("d")
        if step.kind == "snapshot+kill-driver":
            chaos = Chaos(
                "the snapshot (driver killed)",
                lambda: self.snapshotting(generation),
                lambda: self.kill(generation),
                step.delay,
            )
            with chaos:
                # A DStream job's state is exported by its own driver: killed mid-export, the snapshot run
                # fails (typed) and is taken again once the watchdog has restarted the driver.
                run = self.dag_run(
                    example_periodic_snapshot.dag, self.params(self.app), entry, tries=1 if dstream else 4
                )
            entry.outcome = chaos.outcome + ("" if run is not None else "; the snapshot run failed")
            if self.alive(generation):  # the export finished before the kill landed: kill now, as planned
                entry.outcome += f"; then killed {self.kill(generation)}"
        else:
            time.sleep(step.delay)
            entry.outcome = f"killed pid {self.kill(generation)} {step.delay:.1f}s into the step"
        wait_for(lambda: not self.alive(generation), 60, f"generation {generation}'s driver to die")
        launches = len((self.job.root.read_generation_record(generation) or {}).get("launches", []))
        watchdog = example_watchdog.dag.test(run_conf={"job_root": str(self.job.path)})
        entry.dag_runs.append(f"example_watchdog: {watchdog.state} (health check failed; callback restarted)")
        after = (self.job.root.read_generation_record(generation) or {}).get("launches", [])
        assert len(after) == launches + 1, (
            f"the watchdog did not restart generation {generation}: {after[-1:]}"
        )
        assert after[-1].get("mode") == "resume", after[-1]  # from its own checkpoint, never a snapshot again
        self.wait_running(generation, before)
        if dstream and step.kind == "snapshot+kill-driver":
            self.dag_run(example_periodic_snapshot.dag, self.params(self.app), entry)

    # helpers
    # -------------------------------------------------------------------------------------------------

    def exporters(self) -> list[int]:
        return find_processes("export.py", "--job-root", str(self.job.path))

    def exporting(self, generation: int) -> bool:
        """An export of the generation is under way: its exporter application runs, or a snapshot folder of it
        has no manifest yet (the stopping driver is writing it)."""
        if self.exporters():
            return True
        folder = self.job.path / "snapshots"
        return folder.exists() and any(
            f"-g{generation}-" in d.name and not (d / "manifest.json").exists() for d in folder.iterdir()
        )

    def snapshotting(self, generation: int) -> bool:
        """A snapshot of the running job is under way: its exporter application runs, or its driver has a
        snapshot request it has not answered yet (killed then, a Structured Streaming job's snapshot falls
        back to the exporter application; a DStream job's is taken again once the driver runs)."""
        if self.exporters():
            return True
        root = self.job.root
        request = root.read_json(root.snapshot_request_file(generation), what="snapshot request")
        answer = root.read_json(root.snapshot_ack_file(generation), what="snapshot acknowledgement")
        return bool(request) and (not answer or answer.get("request_id") != request.get("request_id"))

    def kill_exporters(self) -> str | None:
        pids = self.exporters()
        for pid in pids:
            kill_tree(pid)
        return f"exporter pids {pids}" if pids else None

    def kill(self, generation: int) -> str | None:
        pid = kill_driver(self.job, generation)
        return f"generation {generation}'s driver (pid {pid})" if pid else None

    def alive(self, generation: int) -> bool:
        return any(g == generation for g, _ in live_drivers(self.job))

    def check(self, entry: StepLog) -> None:
        """After every step: one live driver, the current generation's, running."""
        current = self.current
        drivers = live_drivers(self.job)
        assert [g for g, _ in drivers] == [current], (
            f"after step {entry.index}: live drivers {drivers}, current {current}"
        )
        status = self.job.status(current)
        assert status is not None and status.state == "RUNNING", status
        entry.generation = current

    def run(self) -> None:
        self.say(self.header())
        self.start()
        for index, step in enumerate(self.steps, start=1):
            entry = StepLog(index, step.describe())
            began = time.monotonic()
            self.say(f"[campaign {index}/{len(self.steps)}] {step.describe()}")
            if step.kind == "concurrent-redeploy":
                self.concurrent_redeploy(step, entry)
            elif step.kind.startswith("redeploy"):
                self.redeploy(step, entry)
            elif step.kind == "failed-upgrade":
                self.failed_upgrade(entry)
            else:
                self.kill_and_recover(step, entry)
            self.check(entry)
            entry.seconds = round(time.monotonic() - began, 1)
            self.log.append(entry)
            self.say(
                f"[campaign {index}/{len(self.steps)}] {entry.outcome or 'done'}; generation "
                f"{entry.generation}; {entry.seconds}s; {entry.dag_runs}"
            )

    def finish(self) -> dict[str, Any]:
        """Stop the job, snapshot its final state; return the stop's XCom and the final state per key."""
        import example_job_control
        import example_periodic_snapshot

        entry = StepLog(len(self.steps) + 1, "stop and snapshot")
        stopped = self.dag_run(example_job_control.stop_job, self.params(self.app), entry)
        final = xcom(stopped, "stop")
        snapshot_id = final.get("snapshot_id")  # the stopping driver's own export of its final batch
        if not snapshot_id:  # it could not export: a Structured Streaming job's exporter reads the checkpoint
            snapped = self.dag_run(example_periodic_snapshot.dag, self.params(self.app), entry)
            snapshot_id = xcom(snapped, "snapshot")
        manifest = read_manifest(self.job.root, snapshot_id)
        (part,) = (
            manifest.parts.values()
        )  # v1/v2: state variable "counts"; v3: the aggregation's buffers "op0"
        rows = pq.read_table(
            Path(self.job.root.snapshot_dir(manifest.snapshot_id).child(part.path).uri)
        ).to_pylist()
        n, total = ("n", "total") if "n" in part.value_columns else ("sum", "sum_2")  # see counter_state
        self.log.append(entry)
        return {
            "stop": final,
            "state": {r["key"]: (r[n], r[total]) for r in rows},
            "generation": manifest.generation,
            "batch": manifest.batch,
        }

    def report(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "seed": self.seed,
                    "steps": [s.describe() for s in self.steps],
                    "log": [asdict(e) for e in self.log],
                },
                indent=2,
            )
        )


def run_campaign(
    job: Job,
    run_dir: Path,
    seed: int,
    ops: int,
    say: Callable[[str], None] = print,
    engine: str = "structured",
) -> dict[str, Any]:
    """Run the whole campaign; return what the caller checks (the final state, the sink and the log's
    fold)."""
    from tests.support.drivers import Producer

    campaign = Campaign(job, run_dir, seed, ops, say, engine)
    began = time.monotonic()
    try:
        with Producer(job.events, per_tick=10):
            campaign.run()
            result = campaign.finish()
    finally:
        kill_drivers(job.path)
        report = (
            Path(tempfile.gettempdir()) / f"acp-campaign-{engine}-{seed}.json"
        )  # outlives the test run's folder
        campaign.report(report)
        say(f"fault campaign log: {report}")
    end = int(result["stop"]["end_offsets"][0]["offset"])
    return {
        **result,
        "campaign": campaign,
        "end": end,
        "fold": fold_log(job.events, end),
        "sink": sink_totals(job.output, skip=rolled_back_generations(job.root)),
        "seconds": round(time.monotonic() - began, 1),
    }
