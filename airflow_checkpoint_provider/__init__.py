"""Redeploy and recover stateful Spark Structured Streaming jobs from Apache Airflow."""

__version__ = "0.1.0"
