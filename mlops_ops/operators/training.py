"""Train a model on a data version and log everything needed to reproduce it to MLflow."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import FeatureSetResult, TrainingResult, as_mapping
from mlops_ops.core.errors import MlopsError
from mlops_ops.links.mlflow import MlflowRunLink
from mlops_ops.operators.base import MlflowBaseOperator, ObjectStorageBaseOperator
from mlops_ops.operators.inputs import dag_folder_of, load_model_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.modelspec import ModelSpec

#: Run tag holding the operator's JSON result, so a retry of a finished task returns it without retraining.
RESULT_TAG = "mlops.train_result"


class TrainingFailed(MlopsError, AirflowFailException):
    """Training cannot succeed on this input (bad data or spec); retrying would fail the same way."""


class TrainOperator(ObjectStorageBaseOperator, MlflowBaseOperator):
    """
    Train a classifier on a data version and log it to MLflow with its lineage.

    The model is the spec's scikit-learn estimator in a pipeline that encodes categorical columns, or what
    ``training_function`` returns. The latest ``holdout.fraction`` of the time range is held out: metrics on
    it are logged, and the held-out rows are saved so the gate scores challenger and champion on the same rows.
    Logged: params, seed, held-out metrics, data version and files, code revision, library versions, the
    Airflow dag/run/try and trigger reason as tags; the model with its signature, input example and
    preprocessing. The same data version, params and seed give the same model (identical predictions).

    A retry of a task whose MLflow run finished (same dag run, task, map index and training key) returns that
    run's result instead of training again; a run that an earlier, killed try left RUNNING is marked FAILED.
    Bad input (spec, data, params) fails with :class:`TrainingFailed`, which is not retried.

    With ``gpu=True`` the task runs in Airflow pool ``gpu`` (one slot per GPU, created by
    ``mlops-ops settings apply``) and, when ``gpu_queue`` is set, on that Celery queue; the training function
    is handed ``device="cuda"`` when a GPU is visible.

    :param model_spec: path (relative to the project root) of a model spec YAML, or the spec as a mapping.
    :param data_version: the data version to train on, as returned by ``DataVersionSensor`` (a mapping or its
        JSON): ``{"fingerprint": ..., "files": [...]}``. It stays the model's ``mlops.data_version`` even when
        ``feature_set`` is what is read, so ``DataVersionSensor`` recognises the landed data as trained on.
    :param feature_set: the point-in-time training set of that data version, as ``FeatureSetOperator`` returns
        it (``{"uri", "feature_service", "fingerprint", ...}``): read instead of the data version's files, and
        recorded as ``mlops.feature_set``. Required when the spec has a ``feature_store``, whose feature
        service it must match.
    :param training_function: optional ``"module:function"`` called as
        ``function(train_frame, spec=..., params=..., seed=..., device=...)``; returns a fitted scikit-learn API
        model of the spec's task (``predict_proba`` and ``classes_`` to classify, ``predict`` for regression;
        see :func:`mlops_ops.core.training.fit`). Default: the spec's estimator.
    :param estimator_params: overrides of the spec's estimator params.
    :param seed: overrides the spec's seed.
    :param experiment_name: MLflow experiment; default the spec's model name.
    :param trigger_reason: why this training happens (recorded as a tag), e.g. ``"new data version"``.
    :param gpu: run in the GPU pool and hand the training function a GPU device.
    :param gpu_pool: pool used when ``gpu`` is set.
    :param gpu_queue: executor queue used when ``gpu`` is set (``None`` keeps the default queue).
    :param device: ``"auto"`` (``cuda`` when ``gpu`` and a GPU is visible, else ``cpu``), or a device name.
    :param evaluation_root: folder or ``s3://`` prefix for the held-out rows; default ``<data root>/evaluation``.
    :param expected_code_revision: the code revision a caller (a CI job) retrains for (templated, e.g. from the run
        conf); when set, the task fails without retry unless the workers run that revision (the full id, or a
        prefix of 7+ characters), so that the gate's verdict is about the tested code. Empty: any revision.
    :param mlflow_conn_id: MLflow connection.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :return: ``{"run_id", "experiment_id", "model_uri", "metrics", "data_version", "training_key",
        "code_revision", "evaluation_uri", "artifact_sha256", "seed", "device", "split", "model_name"}``.
    """

    failure = TrainingFailed

    template_fields: Sequence[str] = (
        "model_spec",
        "data_version",
        "feature_set",
        "training_function",
        "estimator_params",
        "seed",
        "experiment_name",
        "trigger_reason",
        "evaluation_root",
        "expected_code_revision",
    )
    template_fields_renderers = {"data_version": "json", "feature_set": "json", "estimator_params": "json"}
    ui_color = "#d6eaf8"
    operator_extra_links = (MlflowRunLink(),)

    def __init__(
        self,
        *,
        model_spec: str | dict[str, Any],
        data_version: str | dict[str, Any],
        feature_set: str | dict[str, Any] | None = None,
        training_function: str | None = None,
        estimator_params: dict[str, Any] | None = None,
        seed: int | str | None = None,
        experiment_name: str | None = None,
        trigger_reason: str = "",
        gpu: bool = False,
        gpu_pool: str = "gpu",
        gpu_queue: str | None = None,
        device: str = "auto",
        evaluation_root: str | None = None,
        expected_code_revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        if gpu:
            kwargs.setdefault("pool", gpu_pool)
            if gpu_queue:
                kwargs.setdefault("queue", gpu_queue)
        super().__init__(**kwargs)
        self.model_spec = model_spec
        self.data_version = data_version
        self.feature_set = feature_set
        self.training_function = training_function
        self.estimator_params = estimator_params
        self.seed = seed
        self.experiment_name = experiment_name
        self.trigger_reason = trigger_reason
        self.gpu = gpu
        self.gpu_pool = gpu_pool
        self.gpu_queue = gpu_queue
        self.device = device
        self.evaluation_root = evaluation_root
        self.expected_code_revision = expected_code_revision

    def _check_code_revision(self, running: str) -> None:
        """Refuse to train when a caller (a CI job) asked for a code revision other than the one this worker runs:
        the gate's verdict must be about the code that was tested."""
        expected = str(self.expected_code_revision or "").strip()
        if not expected:
            return
        if len(expected) > 64 or not all(c.isalnum() or c in "-_." for c in expected):
            raise TrainingFailed(
                "expected_code_revision must be a revision id (up to 64 letters, digits, - _ .)"
            )
        # A short SHA names the full one it begins.
        if not (running == expected or (len(expected) >= 7 and running.startswith(expected))):
            raise TrainingFailed(
                f"the workers run code revision {running[:64]!r}, not the requested {expected!r}: deploy that "
                "revision (MLOPS_CODE_REVISION or the DAG bundle's checkout) before retraining for it"
            )

    def resolve_device(self) -> str:
        """The device handed to the training function."""
        if self.device != "auto":
            return self.device
        if not self.gpu:
            return "cpu"
        if _gpu_visible():
            return "cuda"
        self.log.warning("gpu=True but no GPU is visible to this worker: training on the CPU")
        return "cpu"

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import lineage, training

        dag_folder = dag_folder_of(context)
        spec, data_version, seed, feature_set = self._inputs(dag_folder)
        params = {**spec.params, **(self.estimator_params or {})}
        device = self.resolve_device()
        code_revision = lineage.code_revision(dag_folder)
        self._check_code_revision(code_revision)
        libraries = lineage.library_versions()
        training_key = training.training_key(
            str(data_version.get("fingerprint", "unknown")),
            spec,
            params,
            seed,
            code_revision,
            training_function=self.training_function,
            libraries=libraries,
            device=device,
            feature_set=feature_set.fingerprint if feature_set else None,
        )
        airflow_tags = lineage.airflow_tags_of(context.get("ti"))
        experiment_id = self.hook.get_or_create_experiment(self.experiment_name or spec.name)

        previous = self._finished_run_of_this_task(experiment_id, airflow_tags, training_key)
        if previous is not None:
            self.log.info(
                "MLflow run %s of this task already finished: returning its result", previous.info.run_id
            )
            with self.failing(f"the result recorded on run {previous.info.run_id} cannot be read"):
                return TrainingResult.from_xcom(previous.data.tags[RESULT_TAG], RESULT_TAG).to_xcom()

        tags = {
            **airflow_tags,
            **self._lineage_tags(spec, code_revision, seed, training_key, device, libraries),
        }
        return self._train(spec, data_version, params, seed, device, tags, experiment_id, feature_set)

    def _lineage_tags(
        self,
        spec: ModelSpec,
        code_revision: str,
        seed: int,
        training_key: str,
        device: str,
        libraries: dict[str, str],
    ) -> dict[str, str]:
        """What the run records of how its model was made, so that the same inputs find this run again."""
        from mlops_ops.core import lineage

        return {
            lineage.CODE_REVISION: code_revision,
            lineage.SEED: str(seed),
            lineage.TRAINING_KEY: training_key,
            lineage.TRIGGER_REASON: lineage.clip_tag(str(self.trigger_reason or "")),
            lineage.MODEL_SPEC: lineage.clip_tag(json.dumps(spec.to_dict())),
            lineage.DEVICE: device,
            **{f"mlops.library.{name}": version for name, version in libraries.items()},
        }

    def _inputs(
        self, dag_folder: str | None
    ) -> tuple[ModelSpec, dict[str, Any], int, FeatureSetResult | None]:
        """The model spec, the data version (which must list files), the seed (the argument, else the spec's) and
        the point-in-time training set when the spec names a feature store; what is missing or malformed fails the
        task, not retried."""
        from mlops_ops.core.errors import DataError

        try:
            spec = load_model_spec(self.model_spec, dag_folder)
            data_version = as_mapping(self.data_version, "data_version")
            seed = int(self.seed) if self.seed not in (None, "") else spec.seed
            feature_set = self._feature_set(spec)
        except (DataError, ValueError, FileNotFoundError) as err:
            raise TrainingFailed(str(err)) from err
        if not data_version.get("files"):
            raise TrainingFailed(f"data version {data_version.get('fingerprint')} lists no files to train on")
        return spec, data_version, seed, feature_set

    def _feature_set(self, spec: ModelSpec) -> FeatureSetResult | None:
        """The training set to read, checked against the spec's feature store; ``None`` without one."""
        if self.feature_set in (None, "", {}):
            if spec.feature_store:
                raise ValueError(
                    f"model spec {spec.name!r} reads feature service {spec.feature_store['feature_service']!r}: "
                    "pass the point-in-time training set (FeatureSetOperator's result) as feature_set"
                )
            return None
        feature_set = FeatureSetResult.from_xcom(self.feature_set, "feature_set")
        wanted = (spec.feature_store or {}).get("feature_service")
        if wanted != feature_set.feature_service:
            raise ValueError(
                f"the training set was built from feature service {feature_set.feature_service!r}, but model "
                f"spec {spec.name!r} reads {wanted!r}: training and scoring features would diverge"
            )
        return feature_set

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the data files read (inputs) and the MLflow model logged (output).

        :return: an ``OperatorLineage``, or ``None`` without the OpenLineage provider.
        """
        from mlops_ops.operators.openlineage import files_read, operator_lineage, task_result

        result = task_result(task_instance)
        data_version = as_mapping(self.data_version, "data_version") if self.data_version else {}
        outputs = [(self.hook.tracking_uri, result["model_uri"])] if result.get("model_uri") else []
        return operator_lineage(files_read(list(data_version.get("files") or [])), outputs)

    def _finished_run_of_this_task(
        self, experiment_id: str, airflow_tags: dict[str, str], training_key: str
    ) -> Any:
        """The finished run of an earlier try of this very task (same map index, same inputs), if any.

        Runs an earlier try left RUNNING (killed mid-training) are marked FAILED; runs of this try number or
        later belong to another live process and are left alone.
        """
        from mlops_ops.core import lineage

        if lineage.RUN_ID not in airflow_tags:
            return None
        keys = (lineage.DAG_ID, lineage.RUN_ID, lineage.TASK_ID, lineage.MAP_INDEX)
        identity = {key: airflow_tags[key] for key in keys if key in airflow_tags}
        current_try = int(airflow_tags.get(lineage.TRY_NUMBER, 0) or 0)
        for run in self.hook.search_runs(experiment_id, identity):
            run_tags = run.data.tags
            if (
                run.info.status == "FINISHED"
                and RESULT_TAG in run_tags
                and run_tags.get(lineage.TRAINING_KEY) == training_key
            ):
                return run
            earlier_try = int(run_tags.get(lineage.TRY_NUMBER, 0) or 0) < current_try
            if run.info.status == "RUNNING" and earlier_try:
                self.log.warning("Marking run %s of interrupted try as FAILED", run.info.run_id)
                self.hook.fail_run(run.info.run_id)
        return None

    def _train(
        self,
        spec: ModelSpec,
        data_version: dict[str, Any],
        params: dict[str, Any],
        seed: int,
        device: str,
        tags: dict[str, str],
        experiment_id: str,
        feature_set: FeatureSetResult | None = None,
    ) -> dict[str, Any]:
        import mlflow

        from mlops_ops.core import lineage, settings, storage, training
        from mlops_ops.core.errors import DataError
        from mlops_ops.hooks.data_sources import verify_unchanged

        files = list(data_version["files"])
        fingerprint = str(data_version.get("fingerprint", "unknown"))
        # With a feature store, the point-in-time training set of these files is what is read.
        read = [feature_set.uri] if feature_set else files
        object_store = self.object_store(read)
        # ValueError covers pyarrow's ArrowInvalid (not Parquet, mismatched schemas); other OSErrors (network,
        # throttling) are left to Airflow's retries.
        with self.failing(f"cannot train on data version {fingerprint}", ValueError, FileNotFoundError):
            raw = storage.read_parquet(read, object_store)
            # After the read: the lineage must name the data that was read, not data re-landed since.
            verify_unchanged(data_version, self.storage_conn_id)
            prepared = training.split(training.prepare(raw, spec), spec)
        self.log.info("Data version %s: %s", fingerprint, prepared.summary())

        tags = {
            **tags,
            lineage.DATA_VERSION: fingerprint,
            lineage.DATA_FILES: lineage.clip_tag(json.dumps(files)),
        }
        if feature_set:
            tags[lineage.FEATURE_SET] = lineage.clip_tag(
                json.dumps(
                    {
                        key: getattr(feature_set, key)
                        for key in ("uri", "feature_service", "fingerprint", "rows_out")
                    }
                )
            )
        run_name = "-".join(
            tags[key] for key in (lineage.DAG_ID, lineage.TASK_ID, lineage.RUN_ID) if key in tags
        )
        self.hook.get_conn()  # points MLflow's fluent API at this connection
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or None, tags=tags) as run:
            run_id = run.info.run_id
            mlflow.log_params(
                {
                    **{f"param.{k}": v for k, v in params.items()},
                    "seed": seed,
                    "task": spec.task,
                    "estimator": self.training_function or spec.estimator,
                    "holdout_fraction": spec.holdout.get("fraction"),
                    "holdout_time_column": spec.holdout.get("time_column"),
                    "features": ",".join(spec.features),
                }
            )
            try:
                model = training.fit(
                    spec,
                    prepared.train,
                    params=params,
                    seed=seed,
                    device=device,
                    training_function=self.training_function,
                )
                metrics = training.evaluate(model, prepared.evaluation, spec)
            # Bad params, a non-numeric feature, an estimator or a training function's model of another task
            # (TaskMismatchError is a TypeError): the same input fails the same way on every try.
            except (DataError, TypeError, ValueError) as err:
                raise TrainingFailed(
                    f"training {spec.name} on data version {fingerprint} failed: {err}"
                ) from err
            mlflow.log_metrics(
                {
                    **{f"holdout_{k}": v for k, v in metrics.items()},
                    "rows_train": len(prepared.train),
                    "rows_unlabelled": prepared.rows_unlabelled,
                }
            )
            self.log.info("Held-out metrics: %s", json.dumps(metrics))

            evaluation_root = self.evaluation_root or storage.join(settings.data_root(), "evaluation")
            evaluation_uri = storage.join(evaluation_root, spec.name, f"{run_id}.parquet")
            storage.write_parquet_atomic(
                prepared.evaluation, evaluation_uri, self.object_store(evaluation_uri)
            )
            mlflow.set_tag("mlops.evaluation_uri", evaluation_uri)

            model_uri, artifact_sha256 = self._log_model(model, prepared.train, spec)
            result = TrainingResult(
                run_id=run_id,
                experiment_id=experiment_id,
                model_name=spec.name,
                model_uri=model_uri,
                metrics=metrics,
                data_version=fingerprint,
                training_key=tags[lineage.TRAINING_KEY],
                code_revision=tags[lineage.CODE_REVISION],
                evaluation_uri=evaluation_uri,
                artifact_sha256=artifact_sha256,
                seed=seed,
                device=device,
                split=prepared.summary(),
            ).to_xcom()
            mlflow.set_tags({lineage.ARTIFACT_SHA256: artifact_sha256, RESULT_TAG: json.dumps(result)})
        return result

    def _log_model(self, model: Any, train: Any, spec: ModelSpec) -> tuple[str, str]:
        """Log ``model`` with its signature and input example; return its URI and artifact sha256."""
        import mlflow
        from mlflow.models import infer_signature

        from mlops_ops.core import lineage, storage, training

        example = training.features_frame(train.head(5), spec)
        if spec.task == "binary":
            # The probability of class 1, as the signature of every binary model logged so far says.
            output: Any = training.positive_probability(model, example)
        else:
            import pandas as pd

            output = pd.DataFrame(training.predict(model, example, spec).columns())
        signature = infer_signature(example, output)
        signature = _optional_where_trained_with_nulls(signature, training.features_frame(train, spec))
        options: dict[str, Any] = {}
        if type(model).__module__.startswith("sklearn."):
            import skops.io

            # skops refuses to load types it was not told to trust; these are the ones this pipeline holds.
            options["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        else:
            options["serialization_format"] = "cloudpickle"
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=lineage.pip_requirements(),
            **options,
        )
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=folder)
            artifact_sha256 = storage.directory_sha256(local)
        return info.model_uri, artifact_sha256


def _optional_where_trained_with_nulls(signature: Any, inputs: Any) -> Any:
    """Mark input columns that held missing values in training as optional in ``signature``.

    The signature is inferred from a few example rows, which calls every column required; the model does accept
    missing values in a column it was trained with them, and batch scoring enforces exactly this.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    with_nulls = set(inputs.columns[inputs.isna().any()].tolist())
    if not with_nulls or signature.inputs is None:
        return signature
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(type=column.type, name=column.name, required=column.name not in with_nulls)
        for column in signature.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=signature.outputs, params=signature.params)


def _gpu_visible() -> bool:
    """Whether this process can see an NVIDIA GPU (torch's view when torch is installed)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    try:
        import torch
    except ImportError:
        return Path("/dev/nvidiactl").exists()
    return bool(torch.cuda.is_available())
