"""A spark-submit application that runs a streaming aggregation and hangs inside one batch, so a test can
kill -9 it with that batch planned but not committed.

Arguments: <event log> <checkpoint> <work dir> <batch to hang in> [records per batch]
Writes <work dir>/progress.jsonl (every StreamingQueryProgress, as Spark reports it) and
<work dir>/hanging.json once it is inside the batch to hang in.
"""

from __future__ import annotations

import json
import os
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from airflow_checkpoint_provider.runtime import eventlog


class ProgressRecorder(StreamingQueryListener):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        self.path = path

    def onQueryStarted(self, event: object) -> None:
        pass

    def onQueryProgress(self, event: object) -> None:
        with open(self.path, "a") as handle:
            handle.write(event.progress.json.replace("\n", " ") + "\n")  # type: ignore[attr-defined]

    def onQueryIdle(self, event: object) -> None:
        pass

    def onQueryTerminated(self, event: object) -> None:
        pass


def main() -> None:
    log, checkpoint, work, hang_batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    per_batch = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    spark = SparkSession.builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.streams.addListener(ProgressRecorder(os.path.join(work, "progress.jsonl")))
    eventlog.register(spark)
    events = (
        spark.readStream.format("eventlog").option("path", log).option("maxRecordsPerBatch", per_batch).load()
    )
    counts = events.groupBy("key").agg(F.count("*").alias("n"), F.sum("value").alias("total"))

    def sink(df: object, batch_id: int) -> None:
        df.collect()  # type: ignore[attr-defined]
        if batch_id == hang_batch:
            with open(os.path.join(work, "hanging.json"), "w") as handle:
                json.dump({"batch": batch_id, "pid": os.getpid()}, handle)
            time.sleep(3600)

    query = (
        counts.writeStream.outputMode("update")
        .foreachBatch(sink)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    query.awaitTermination()


if __name__ == "__main__":
    main()
