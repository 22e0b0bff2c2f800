"""sensors of airflow-checkpoint-provider."""
