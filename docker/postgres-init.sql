-- MLflow keeps its tracking and registry tables in their own database beside Airflow's.
CREATE DATABASE mlflow OWNER airflow;
