"""deploy/kubernetes/: the GPU pod template and the Kubernetes objects of the Helm values are valid Kubernetes
(the schemas kubernetes-validate ships, offline, strict: an unknown field fails), the pod template reads as the
KubernetesExecutor reads it, and it asks for a GPU on a GPU node."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import mlops_ops

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT_ROOT / "deploy" / "kubernetes"
POD_TEMPLATE = DEPLOY / "gpu-pod-template.yaml"
#: The oldest Kubernetes minor still in the managed clouds' support windows, and the newest the package knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_the_gpu_pod_template_is_a_valid_pod(version):
    pod = yaml.safe_load(POD_TEMPLATE.read_text())
    kubernetes_validate.validate(pod, version, strict=True)


def test_a_wrong_field_fails_the_validation():
    pod = yaml.safe_load(POD_TEMPLATE.read_text())
    pod["spec"]["containers"][0]["resource"] = pod["spec"]["containers"][0].pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, VERSIONS[-1], strict=True)


def test_the_pod_template_asks_for_a_gpu_on_a_gpu_node_in_the_executors_base_container():
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    pod = PodGenerator.deserialize_model_file(str(POD_TEMPLATE))
    (base,) = pod.spec.containers
    assert base.name == "base"  # the container the KubernetesExecutor runs the task in
    assert base.resources.limits["nvidia.com/gpu"] == base.resources.requests["nvidia.com/gpu"] == "1"
    assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")
    ]
    mounts = {mount.mount_path: mount.name for mount in base.volume_mounts}
    assert mounts["/opt/mlops"] == "mlops-shared"
    environment = {variable.name: variable.value for variable in base.env}
    assert environment["MLOPS_HOME"] == "/opt/mlops"


def test_the_image_carries_the_pod_template_where_the_docs_tell_tasks_to_find_it():
    target = "/opt/airflow/pod_templates/gpu.yaml"
    assert f"deploy/kubernetes/gpu-pod-template.yaml {target}" in (PROJECT_ROOT / "Dockerfile").read_text()
    assert target in POD_TEMPLATE.read_text()
    assert target in (PROJECT_ROOT / "docs" / "deployment" / "kubernetes.md").read_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_kubernetes_objects_of_the_helm_values_are_valid(version):
    """The chart copies these fields into its pods: they are checked inside a pod of the worker's shape."""
    values = _values()
    for component in ("workers", "scheduler"):
        section = values[component]
        container = {
            "name": component,
            "image": f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}",
            "volumeMounts": section["extraVolumeMounts"],
            "env": values["env"],
            "envFrom": yaml.safe_load(values["extraEnvFrom"]),
        }
        if "resources" in section:
            container["resources"] = section["resources"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": component},
            "spec": {"containers": [container], "volumes": section["extraVolumes"]},
        }
        kubernetes_validate.validate(pod, version, strict=True)


def test_the_helm_values_run_celery_and_kubernetes_side_by_side_with_the_fab_auth_manager():
    values = _values()
    assert values["executor"].split(",") == ["CeleryExecutor", "KubernetesExecutor"]
    assert values["config"]["core"]["auth_manager"].endswith("fab_auth_manager.FabAuthManager")
    assert values["config"]["logging"]["remote_logging"] == "True"
    assert values["images"]["airflow"]["tag"] == mlops_ops.__version__
    pod = yaml.safe_load(POD_TEMPLATE.read_text())
    assert pod["spec"]["containers"][0]["image"].endswith(f"mlops-ops-airflow:{mlops_ops.__version__}")
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert f"apache/airflow:{values['airflowVersion']}-" in dockerfile
