"""callbacks of airflow-checkpoint-provider."""
