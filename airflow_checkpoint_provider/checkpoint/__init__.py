"""Pure-Python reading of Spark checkpoints and job roots, over fsspec. Never imports pyspark or airflow."""

from airflow_checkpoint_provider.checkpoint.inspector import CheckpointInfo, inspect_checkpoint

__all__ = ["CheckpointInfo", "inspect_checkpoint"]
