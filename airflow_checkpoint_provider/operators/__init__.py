"""operators of airflow-checkpoint-provider."""
