"""Runs inside the Spark driver: pyspark allowed here only; never imports airflow."""
