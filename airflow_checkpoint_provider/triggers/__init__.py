"""triggers of airflow-checkpoint-provider."""
