"""hooks of airflow-checkpoint-provider."""
