-- MLflow keeps its tracking and registry tables in their own database beside Airflow's.
CREATE DATABASE mlflow OWNER airflow;
-- MLflow's basic-auth app keeps its users and permissions in a database of its own (docker/mlflow-basic-auth.ini).
CREATE DATABASE mlflow_auth OWNER airflow;
