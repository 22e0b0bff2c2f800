"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_provider import __version__

#: Must equal the normalised distribution name, or ``airflow providers list`` breaks for every provider.
PACKAGE_NAME = "airflow-checkpoint-provider"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Checkpoint (Spark Structured Streaming lifecycle)",
        "description": "Redeploy and recover stateful Spark Structured Streaming jobs without losing or "
        "double-counting state: graceful stop, snapshots, checkpoint cleanup, start with initial state.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Spark Structured Streaming checkpoints",
                "external-doc-url": "https://spark.apache.org/docs/latest/streaming/index.html",
                "tags": ["software"],
            }
        ],
        # Drivers are submitted through the Spark provider's own ``spark`` connection type.
        "connection-types": [],
        "operators": [
            {
                "integration-name": "Spark Structured Streaming checkpoints",
                "python-modules": [
                    "airflow_checkpoint_provider.operators.checkpoint",
                    "airflow_checkpoint_provider.operators.upgrade",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Spark Structured Streaming checkpoints",
                "python-modules": ["airflow_checkpoint_provider.sensors.checkpoint"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Spark Structured Streaming checkpoints",
                "python-modules": ["airflow_checkpoint_provider.hooks.checkpoint"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Spark Structured Streaming checkpoints",
                "python-modules": ["airflow_checkpoint_provider.triggers.checkpoint"],
            }
        ],
        "extra-links": [
            "airflow_checkpoint_provider.operators.checkpoint.StreamingJobLink",
            "airflow_checkpoint_provider.operators.checkpoint.SparkUILink",
        ],
        "config": {
            "checkpoint_provider": {
                "description": "The airflow-checkpoint-provider's UI page.",
                "options": {
                    "job_roots": {
                        "description": "Job roots (paths or URIs, comma or newline separated) whose jobs the "
                        "UI page shows. The api-server reads them: it needs the same storage settings as the "
                        "workers.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "/data/jobs/counter, s3://bucket/jobs/orders",
                        "default": "",
                    }
                },
            }
        },
    }
