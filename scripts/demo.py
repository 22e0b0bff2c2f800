"""The main job, as far as the project goes today: a real streaming query writes a checkpoint on local Spark,
then the pure-Python inspector reports where it stands, next to what Spark itself reported.

Later issues grow this into the full redeploy story run through Airflow (see the README).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_checkpoint_provider.runtime import eventlog  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "demo-output"), help="where the demo writes (wiped first)")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--per-batch", type=int, default=100)
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log, checkpoint = out / "events", out / "checkpoint"
    started = time.monotonic()

    print(f"==> writing {args.events} events to the event log {log}")
    with eventlog.EventLogWriter(str(log), segment_records=200) as writer:
        writer.append({"key": f"user-{i % 7}", "value": i % 13, "ts": time.time()} for i in range(args.events))

    print("==> starting a local Spark session (10-20 s on a cold JVM)")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("airflow-checkpoint-demo")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(out / "spark-local"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    eventlog.register(spark)
    events = (
        spark.readStream.format("eventlog").option("path", str(log)).option("maxRecordsPerBatch", args.per_batch).load()
    )
    totals = events.groupBy("key").agg(F.count("*").alias("events"), F.sum("value").alias("total"))
    print(f"==> running a streaming aggregation, {args.per_batch} events per batch, checkpoint {checkpoint}")
    query = (
        totals.writeStream.outputMode("complete").format("memory").queryName("demo_totals")
        .option("checkpointLocation", str(checkpoint)).start()
    )
    query.processAllAvailable()
    progress = query.lastProgress
    query.stop()
    state = {r["key"]: (r["events"], r["total"]) for r in spark.table("demo_totals").collect()}
    spark.stop()

    print("==> the inspector's report (airflow-checkpoint inspect, no JVM):\n")
    report_cmd = [str(Path(sys.executable).parent / "airflow-checkpoint"), "inspect", str(checkpoint)]
    subprocess.run(report_cmd, check=True)
    report = json.loads(subprocess.run([*report_cmd, "--json"], check=True, capture_output=True, text=True).stdout)

    spark_end = [json.loads(s["endOffset"]) if isinstance(s["endOffset"], str) else s["endOffset"] for s in progress["sources"]]
    expected: dict[str, tuple[int, int]] = {}
    for record in eventlog.read_records(str(log), 0, args.events):
        n, t = expected.get(record["key"], (0, 0))
        expected[record["key"]] = (n + 1, t + record["value"])
    checks = {
        "last committed batch (Spark's lastProgress vs inspector)": (progress["batchId"], report["last_committed_batch"]),
        "end offsets (Spark vs inspector)": (spark_end, report["committed_end_offsets"]),
        "query id (Spark vs inspector)": (progress["id"], report["query_id"]),
        "per-key totals (streaming state vs event log)": (state, expected),
    }
    print("\n==> checks")
    ok = True
    for name, (a, b) in checks.items():
        same = a == b
        ok &= same
        print(f"  [{'ok' if same else 'MISMATCH'}] {name}" + ("" if same else f": {a!r} != {b!r}"))
    print(f"\n==> done in {time.monotonic() - started:.1f} s; files left in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
