"""Airflow plugins: the provider's UI page."""
