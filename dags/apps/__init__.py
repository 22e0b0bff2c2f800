"""Example Spark applications run by the example DAGs (they import pyspark; DAG files never import them)."""
