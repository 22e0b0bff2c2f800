"""Redeploys as routine: follow the release a deployment pipeline names, and rotate the checkpoint.

``example_scheduled_redeploy`` runs on a schedule (every 10 minutes; ``ACP_SCHEDULED_REDEPLOY_EVERY_S``
overrides it) and redeploys the job to the release in the Airflow Variable ``acp_release`` — through every
check of ``example_safe_redeploy`` (plan, dry run, readiness, rollback). A deployment pipeline publishes a
release by setting the Variable::

    airflow variables set acp_release '{"job_root": "/data/jobs/counter", "conn_id": "",
        "application": "/apps/event_counter_v2.py", "code_version": "event-counter-v2", "migration": "auto",
        "application_args": ["--events", "/data/events", "--output", "/data/out"],
        "spark_conf": {"spark.sql.shuffle.partitions": "3"}}'

When the release is what already runs, the plan says so and the run does nothing else (its other tasks are
skipped): the job is not touched. A release that changes only settings the checkpoint does not pin (the
application's arguments, ``spark.executor.memory``) restarts the same generation with them (the resume
branch). A pipeline that would rather trigger than wait can also trigger the DAG.

``example_checkpoint_rotation`` runs weekly with ``intent="rotate"``: the same release, a fresh generation
from a snapshot — for jobs whose checkpoint keeps growing (the seed's "clean up the checkpoint on redeploy" as
routine maintenance). The retired checkpoint stays in place until snapshot retention and cleanup remove it.

Both are paused when created: set the Variable, then unpause.
"""

from __future__ import annotations

import datetime as dt
import os

from example_safe_redeploy import SAFE_PARAMS, safe_redeploy_dag

#: How often the scheduled redeploy looks for a new release, in seconds (read from the environment only).
EVERY_S = int(os.environ.get("ACP_SCHEDULED_REDEPLOY_EVERY_S", "600"))

# [START example_scheduled_redeploy]
scheduled = safe_redeploy_dag(
    "example_scheduled_redeploy",
    schedule=dt.timedelta(seconds=EVERY_S),
    release="var.json.acp_release",  # what the deployment pipeline names
    intent="upgrade",  # nothing changed: the plan skips the rest
    tags=("scheduled",),
)
rotation = safe_redeploy_dag(
    "example_checkpoint_rotation",
    schedule=dt.timedelta(days=7),
    params={**SAFE_PARAMS, "intent": "rotate"},
    release="var.json.acp_release",
    intent="rotate",  # same code, a fresh generation from a snapshot
    tags=("scheduled",),
)
# [END example_scheduled_redeploy]
