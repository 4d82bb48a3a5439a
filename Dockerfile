# The Airflow image of the production stack: the official image plus mlops-ops with every extra.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/mlops-ops/
COPY --chown=airflow:root mlops_ops /opt/mlops-ops/mlops_ops
RUN pip install --no-cache-dir "/opt/mlops-ops[all]"
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root airflow_settings.yaml /opt/airflow/airflow_settings.yaml
ENV PYTHONPATH=/opt/airflow
