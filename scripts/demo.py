"""The main job: the whole redeploy story on local Spark, driven through Airflow's example DAGs in a real
local Airflow deployment (api-server, scheduler, dag-processor and triggerer as processes, LocalExecutor,
deferrable operators on; runs triggered through the REST API, as a user triggers them from the UI).

1. start Airflow (SQLite, its own AIRFLOW_HOME under the output folder);
2. write events continuously to the shipped event log (a stand-in for a Kafka partition);
3. start the v1 counter (``example_start_job``);
4. redeploy to v2 with the v1 -> v2 state migration (``example_redeploy``: stop, snapshot, cleanup, start);
5. kill -9 the v2 driver in the middle of a batch, and let the watchdog (``example_watchdog``) bring it back
   from its checkpoint;
6. stop the events, let the job drain, stop it (``example_stop_job``);
7. report generations, snapshots, batches, stop latency, redeploy downtime, wall time, and the per-key totals
   against the event log — they must be equal.

Nothing is left running when it ends or is interrupted, unless ``--keep-airflow``: then Airflow stays up
(with the job stopped) until Ctrl-C, and the demo prints the UI's address and login. Airflow's and Spark's
logs go to files in the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
sys.path.insert(0, str(ROOT))

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint  # noqa: E402
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot  # noqa: E402
from airflow_checkpoint_provider.model.records import DriverStatus  # noqa: E402
from airflow_checkpoint_provider.runtime import eventlog  # noqa: E402
from scripts.deployment import AirflowDeployment  # noqa: E402

T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


class Producer:
    """Appends events for 13 keys at a steady rate until stopped."""

    def __init__(self, log: Path, rate: int) -> None:
        self.writer = eventlog.EventLogWriter(str(log), segment_records=2000)
        self.rate = rate
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.written = 0

    def run(self) -> None:
        tick = 0.1
        per_tick = max(1, int(self.rate * tick))
        while not self.stopped.is_set():
            i = self.written
            self.writer.append(
                {"key": f"user-{(i + j) % 13}", "value": (i + j) * 7 % 101, "ts": time.time()}
                for j in range(per_tick)
            )
            self.written += per_tick
            time.sleep(tick)

    def stop(self) -> None:
        if not self.stopped.is_set():
            self.stopped.set()
            self.thread.join()
            self.writer.close()


class Demo:
    def __init__(self, out: Path, rate: int) -> None:
        self.out = out
        self.job = out / "jobs" / "counter"
        self.events, self.sink = out / "events", out / "sink"
        self.root = JobRoot(self.job)
        self.producer = Producer(self.events, rate)
        self.airflow = AirflowDeployment(out / "airflow-home", DAGS, deferrable=True)
        self.standby: DriverStatus | None = None

    def params(self, app: str, **extra: Any) -> dict[str, Any]:
        return {
            "job_root": str(self.job),
            "application": str(DAGS / "apps" / f"event_counter_{app}.py"),
            "application_args": [
                "--events",
                str(self.events),
                "--output",
                str(self.sink),
                "--trigger-seconds",
                "1",
            ],
            "code_version": f"event-counter-{app}",
            "spark_conf": {
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "3",
                "spark.local.dir": str(self.out / "spark-local"),
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.showConsoleProgress": "false",
            },
            **extra,
        }

    def start_airflow(self) -> None:
        say("starting Airflow: api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite)")
        self.airflow.start()
        say(f"  Airflow is up at {self.airflow.url}")

    def dag(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """Trigger one DAG run through the REST API and wait for it; its state and each task's state and
        return value."""
        started = time.monotonic()
        run_id, state = self.airflow.run(dag_id, conf, timeout=900)
        tasks = {}
        for task_id, (task_state, duration) in self.airflow.task_instances(dag_id, run_id).items():
            result = self.airflow.xcom(dag_id, run_id, task_id) if task_state == "success" else None
            tasks[task_id] = {"state": task_state, "result": result, "duration_s": duration}
        listed = ", ".join(f"{t} {v['state']}" for t, v in tasks.items())
        say(f"  {dag_id}: {state} in {time.monotonic() - started:.0f}s ({listed})")
        return {"state": state, "run_id": run_id, "tasks": tasks}

    def wait(self, condition: Any, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: timed out waiting for {what} (see {self.out}/airflow-home/logs and the driver "
                    f"logs under {self.job}/generations/*/logs)"
                )
            time.sleep(0.3)

    def committed(self, generation: int) -> int:
        info = inspect_checkpoint(self.root.checkpoint(generation), allow_empty=True)
        return -1 if info.last_committed_batch is None else info.last_committed_batch

    def kill_driver(self, generation: int) -> int:
        launch = (self.root.read_generation_record(generation) or {})["launches"][-1]
        os.killpg(int(launch["pid"]), signal.SIGKILL)
        return int(launch["pid"])

    def cleanup(self) -> None:
        """Leave nothing running: the producer, Airflow, every driver this demo launched."""
        self.producer.stop()
        self.airflow.stop()
        for record in self.root.generation_records().values():
            for launch in record.get("launches", []):
                try:
                    os.killpg(int(launch["pid"]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, KeyError, TypeError, ValueError):
                    pass

    def run(self) -> int:
        self.start_airflow()
        self.producer.thread.start()
        say(f"writing events continuously to {self.events} ({self.producer.rate}/s, 13 keys)")

        say("1/5 start the v1 counter: example_start_job (a cold Spark driver takes ~20 s)")
        started = self.dag("example_start_job", self.params("v1"))
        if started["state"] != "success":
            return self.fail("the start failed")
        self.wait(lambda: self.committed(1) >= 3, "v1 to commit 3 batches")
        say(f"  v1 running: generation 1 at batch {self.committed(1)}")

        say(
            "2/5 redeploy to v2 with the v1 -> v2 state migration: example_redeploy (warm standby, stop, "
            "snapshot, cleanup, start)"
        )
        redeploy = self.dag("example_redeploy", self.params("v2", migration="v1_to_v2"))
        if redeploy["state"] != "success":
            return self.fail("the redeploy failed")
        stop, snap = redeploy["tasks"]["stop"]["result"], redeploy["tasks"]["snapshot"]["result"]
        self.standby = self.root.read_status(2)  # before the kill below: the restarted driver reports anew
        exported = (
            f"exported by the stopping driver in {stop['snapshot_s']}s"
            if stop.get("snapshot_id")
            else "exported by the exporter application"
        )
        say(
            f"  v1 stopped at batch {stop['final_committed_batch']} after {stop['stop_latency_s']}s "
            f"({stop['method']}); snapshot {snap} ({exported}); v2 runs as generation "
            f"{redeploy['tasks']['start']['result']['generation']}"
        )

        say("3/5 kill -9 the v2 driver in the middle of a batch")
        self.wait(lambda: self.committed(2) >= 2, "v2 to commit 2 batches")
        self.wait(
            lambda: inspect_checkpoint(self.root.checkpoint(2), allow_empty=True).in_flight_batch is not None,
            "a batch in flight",
        )
        in_flight = inspect_checkpoint(self.root.checkpoint(2)).in_flight_batch
        say(f"  killed pid {self.kill_driver(2)} inside batch {in_flight}")
        say(
            "  the watchdog's health check fails, its callback restarts the job from its checkpoint: "
            "example_watchdog"
        )
        self.dag("example_watchdog", {"job_root": str(self.job)})
        restart = (self.root.read_generation_record(2) or {})["launches"][-1]
        self.wait(
            lambda: (
                (s := self.root.read_status(2)) is not None
                and s.launch_id == restart["launch_id"]
                and s.state == "RUNNING"
            ),
            "the restarted driver",
        )
        status = self.root.read_status(2)
        assert status is not None
        say(f"  restarted by {restart['by']}: {status.start_mode} ({status.start_reason})")

        say("4/5 stop the events and let the job drain")
        self.producer.stop()
        end = eventlog.EventLogIndex(str(self.events)).end()
        self.wait(
            lambda: (
                (info := inspect_checkpoint(self.root.checkpoint(2))).committed is not None
                and info.committed.end_offsets_json()[0]["offset"] == end
            ),
            f"the job to reach offset {end}",
        )
        say(f"  all {end} events committed (generation 2, batch {self.committed(2)})")
        final = self.dag("example_stop_job", self.params("v2"))
        if final["state"] != "success":
            return self.fail("the stop failed")

        say("5/5 report")
        return self.report(end, stop)

    def fail(self, what: str) -> int:
        say(f"demo FAILED: {what}; see {self.out}/airflow-home/logs")
        return 1

    def report(self, end: int, stop: dict[str, Any]) -> int:
        import pyarrow.parquet as pq

        subprocess.run(
            [str(Path(sys.executable).parent / "airflow-checkpoint"), "status", str(self.job)], check=True
        )
        request = self.root.read_stop_request(1)
        first_commit = Path(self.root.checkpoint(2).path) / "commits" / "0"
        downtime = first_commit.stat().st_mtime - request.requested_at if request else float("nan")
        expected: dict[str, tuple[int, int]] = {}
        snapshot_end = int(
            json.loads((Path(self.root.location.path) / "generations" / "2" / "generation.json").read_text())[
                "starting_offsets"
            ][0]["offset"]
        )
        most: dict[str, int] = {}
        for i, record in enumerate(eventlog.read_records(str(self.events), 0, end)):
            n, t = expected.get(record["key"], (0, 0))
            expected[record["key"]] = (n + 1, t + record["value"])
            if i >= snapshot_end:
                most[record["key"]] = max(most.get(record["key"], record["value"]), record["value"])
        latest: dict[str, dict[str, Any]] = {}
        folders = sorted(
            ((int(f.parent.name[2:]), int(f.name[6:])), f)
            for f in self.sink.glob("g=*/batch=*")
            if (f / "_SUCCESS").exists()
        )
        for _, folder in folders:
            for row in pq.read_table(folder).to_pylist():
                latest[row["key"]] = row
        got = {k: (r["n"], r["total"]) for k, r in latest.items()}
        got_max = {k: r.get("max") for k, r in latest.items() if r.get("max") is not None}
        generations = self.root.generation_records()
        batches = {g: self.committed(g) + 1 for g in generations}
        print()
        print(
            f"  generations            {len(generations)} (v1 retired, v2 current); batches committed "
            + ", ".join(f"g{g}: {b}" for g, b in batches.items())
        )
        print(
            "  driver launches        "
            + ", ".join(f"g{g}: {len(r.get('launches', []))}" for g, r in generations.items())
        )
        print(
            f"  stop latency (v1)      {stop['stop_latency_s']:.2f} s (request -> acknowledged at a batch "
            "boundary)"
        )
        print(f"  redeploy downtime      {downtime:.1f} s (stop request -> first committed batch of v2)")
        standby = self.standby
        if request and standby is not None and standby.go_at is not None and standby.warm_s is not None:
            print(
                f"  warm standby           v2 warmed up in {standby.warm_s:.1f} s while v1 ran; its go came "
                f"{standby.go_at - request.requested_at:.1f} s after the stop request, its first commit "
                f"{first_commit.stat().st_mtime - standby.go_at:.1f} s after the go"
            )
        print(f"  events                 {end}")
        print(f"  wall time              {time.monotonic() - T0:.0f} s")
        checks = {
            "per-key (count, total) in the sink == the event log": got == expected,
            "v2's max == the maximum over the events since the snapshot": got_max == most,
        }
        for name, ok in checks.items():
            print(f"  [{'ok' if ok else 'MISMATCH'}] {name}")
        if got != expected:
            for key in sorted(set(got) | set(expected)):
                if got.get(key) != expected.get(key):
                    print(f"      {key}: sink {got.get(key)} vs log {expected.get(key)}")
        print(f"\n  files: {self.out} (airflow-home/logs; driver logs under jobs/counter/generations/*/logs)")
        return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default=str(ROOT / "demo-output"), help="where the demo writes (wiped first)"
    )
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument(
        "--keep-airflow",
        action="store_true",
        help="keep Airflow running at the end (the job stopped) to look at the UI; Ctrl-C ends it",
    )
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    demo = Demo(out, args.rate)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        code = demo.run()
        if args.keep_airflow:
            demo.producer.stop()
            say(
                f"Airflow stays up: open {demo.airflow.url} and log in as {demo.airflow.username} / "
                f"{demo.airflow.password} (Ctrl-C ends it)"
            )
            while True:
                demo.airflow.check_alive()
                time.sleep(2)
        return code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        demo.cleanup()
        say("nothing left running")


if __name__ == "__main__":
    sys.exit(main())
