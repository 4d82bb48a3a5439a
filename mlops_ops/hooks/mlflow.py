"""Hook for an MLflow tracking server and model registry."""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import AbstractContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.sdk import BaseHook

from mlops_ops.core.settings import default_artifact_root, default_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.core.model_overview import GateSummary, ModelOverview

#: The MLflow UI's base URL when the connection names none and the tracking URI is not http(s) (``make up``).
UI_URL_ENV = "MLOPS_MLFLOW_UI_URL"
#: MLflow's REST client retries a failed request 7 times with a backoff factor of 2 (about 4 minutes) and
#: waits 120 s for an answer: a task against a dead server would hang for minutes before Airflow could retry
#: it. A blip is ridden out in-process (3 retries, 1 s factor: about 7 s), an outage is left to Airflow's
#: retries with exponential backoff. Set in the task's process unless its environment sets them already.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
#: Packages whose MLflow request-header providers (entry point ``mlflow.request_header_provider``) are kept out of
#: this process's MLflow calls; see :func:`without_foreign_request_headers`.
EXCLUDED_HEADER_PROVIDERS = ("feast.",)
_HEADER_REGISTRY = "mlflow.tracking.request_header.registry"


def without_foreign_request_headers() -> None:
    """Keep other packages' MLflow request-header providers (Feast's) out of this process's MLflow calls.

    Feast registers one through MLflow's ``mlflow.request_header_provider`` entry point, for its own MLflow-backed
    data sources. MLflow loads every such provider on its first HTTP request, so every task that talks to an
    MLflow server imported all of Feast first (~5 s on an idle machine, 10-20 s on a loaded worker), and Feast's
    provider adds a bearer token to each request: the pod's Kubernetes service-account token when one is mounted,
    sent to whichever MLflow server the connection names. The connection's own credentials are unaffected
    (:meth:`MlflowHook.get_conn` hands them to MLflow itself).
    """
    loaded = sys.modules.get(_HEADER_REGISTRY)
    if loaded is not None:  # too late to skip the import; still keep the headers out
        registry = loaded._request_header_provider_registry
        registry._registry = [
            provider
            for provider in registry._registry
            if not type(provider).__module__.startswith(EXCLUDED_HEADER_PROVIDERS)
        ]
        return
    from importlib import metadata

    every_entry_point = metadata.entry_points

    def entry_points(**selection: Any) -> Any:
        found: Any = every_entry_point(**selection)
        if selection.get("group") != "mlflow.request_header_provider":
            return found
        return metadata.EntryPoints(
            point for point in found if not point.value.startswith(EXCLUDED_HEADER_PROVIDERS)
        )

    # MLflow reads the entry points once, when the registry module is imported: import it now, filtered.
    metadata.entry_points = entry_points
    try:
        importlib.import_module(_HEADER_REGISTRY)
    finally:
        metadata.entry_points = every_entry_point


class MlflowHook(BaseHook):
    """
    Talks to MLflow tracking and the model registry through one Airflow connection.

    The connection's *Host* is the tracking URI (``http://mlflow:5000``, ``sqlite:////path/mlflow.db``);
    the extra may set ``registry_uri`` (defaults to the tracking URI), ``artifact_root`` (where new
    experiments keep artifacts) and ``ui_url`` (the MLflow UI that task links point at; default the tracking
    URI when it is ``http(s)://``, else ``$MLOPS_MLFLOW_UI_URL``). *Password* is sent as a bearer token, or
    with *Login* as basic auth.
    When the connection does not exist, the embedded profile (``MLOPS_PROFILE=embedded``) uses
    ``$MLFLOW_TRACKING_URI`` or ``sqlite:///.mlops/mlflow.db`` with artifacts under ``.mlops/artifacts``;
    any other profile refuses (``AirflowNotFoundException`` naming the connection).

    :param mlflow_conn_id: Airflow connection id of the MLflow server.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def _settings(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from mlops_ops.core import settings

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if not settings.embedded_profile():
                raise AirflowNotFoundException(
                    settings.missing_connection(self.mlflow_conn_id, "mlflow", "host = the tracking URI")
                ) from None
            self.log.info(
                "No connection %r: using the embedded MLflow at %s",
                self.mlflow_conn_id,
                default_tracking_uri(),
            )
            return {
                "tracking_uri": default_tracking_uri(),
                "registry_uri": None,
                "artifact_root": default_artifact_root(),
                "ui_url": None,
                "login": None,
                # No password: the embedded MLflow has no authentication.
                "password": None,  # nosec B105
            }
        if (
            not conn.host
            and not settings.embedded_profile()
            and not os.environ.get(settings.TRACKING_URI_ENV)
        ):
            # The embedded settings file ships this connection with no host: outside that profile it would
            # silently mean a local SQLite registry on each worker.
            raise AirflowNotFoundException(
                f"connection {self.mlflow_conn_id!r} has no host: set it to the tracking URI (or set "
                f"{settings.PROFILE_ENV}={settings.EMBEDDED_PROFILE} for the embedded MLflow)"
            )
        extra = conn.extra_dejson
        return {
            "tracking_uri": conn.host or default_tracking_uri(),
            "registry_uri": extra.get("registry_uri"),
            "artifact_root": extra.get("artifact_root") or default_artifact_root(),
            "ui_url": extra.get("ui_url"),
            "login": conn.login,
            "password": conn.password,
        }

    @property
    def tracking_uri(self) -> str:
        """The tracking URI this hook talks to."""
        return self._settings["tracking_uri"]

    @property
    def registry_uri(self) -> str:
        """The model registry URI (the tracking URI unless the connection sets another)."""
        return self._settings["registry_uri"] or self.tracking_uri

    @property
    def artifact_root(self) -> str:
        """Where new experiments keep their artifacts (``<artifact_root>/<experiment name>``)."""
        return self._settings["artifact_root"]

    @property
    def ui_url(self) -> str | None:
        """The MLflow UI's base URL for links, or ``None`` when none is known (a SQLite registry without
        ``$MLOPS_MLFLOW_UI_URL``): the connection's ``ui_url`` extra, an ``http(s)://`` tracking URI, or
        ``$MLOPS_MLFLOW_UI_URL``."""
        url = self._settings.get("ui_url")
        if not url and self.tracking_uri.startswith(("http://", "https://")):
            url = self.tracking_uri
        url = url or os.environ.get(UI_URL_ENV)
        return url.rstrip("/") if url else None

    def run_url(self, run_id: str) -> str | None:
        """The MLflow UI page of run ``run_id`` (``None`` without a UI URL)."""
        return f"{self.ui_url}/#/runs/{quote(run_id, safe='')}" if self.ui_url else None

    def model_version_url(self, model_name: str, version: str) -> str | None:
        """The MLflow UI page of version ``version`` of ``model_name`` (``None`` without a UI URL)."""
        if not self.ui_url:
            return None
        return f"{self.ui_url}/#/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"

    def model_url(self, model_name: str) -> str | None:
        """The MLflow UI page of registered model ``model_name`` (``None`` without a UI URL)."""
        return f"{self.ui_url}/#/models/{quote(model_name, safe='')}" if self.ui_url else None

    def _export_credentials(self) -> None:
        # MLflow's REST client reads credentials only from the environment; this is the task's own process.
        login, password = self._settings["login"], self._settings["password"]
        if password and login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
        elif password:
            os.environ["MLFLOW_TRACKING_TOKEN"] = password

    @property
    def endpoint(self) -> str:
        """The tracking URI without credentials, for messages."""
        parts = urlsplit(self.tracking_uri)
        if not parts.netloc or "@" not in parts.netloc:
            return self.tracking_uri
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def unreachable_as(self, action: str) -> AbstractContextManager[None]:
        """A block whose failures to reach the tracking server are re-raised as one
        :class:`~mlops_ops.core.services.ServiceUnavailable` naming the server and ``action``
        ("MLflow tracking server http://mlflow:5000 unreachable while registering churn: ...").

        :param action: what the block does, e.g. ``"registering churn"``.
        """
        from mlops_ops.core.services import unreachable_as

        return unreachable_as("MLflow tracking server", self.endpoint, action)

    def get_conn(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this connection; also points MLflow's fluent API at it.

        Bounds MLflow's HTTP retries and timeout (:data:`HTTP_DEFAULTS`) unless the environment sets them, and
        keeps other packages' request headers out (:func:`without_foreign_request_headers`).
        """
        import mlflow

        for variable, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(variable, value)
        without_foreign_request_headers()
        self._export_credentials()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @cached_property
    def client(self) -> MlflowClient:
        """The cached client of :meth:`get_conn`."""
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """Check that the tracking server answers and the registry is reachable."""
        try:
            self.client.search_experiments(max_results=1)
            self.client.search_registered_models(max_results=1)
        except Exception as err:
            return False, f"MLflow at {self.tracking_uri} is not reachable: {type(err).__name__}: {err}"
        return True, f"Connected to MLflow at {self.tracking_uri}"

    def get_or_create_experiment(self, name: str) -> str:
        """Id of experiment ``name``, created with an explicit artifact location when missing."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{name}"
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another task created it between our lookup and create.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def get_version_by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at, or ``None`` when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    @staticmethod
    def tag_filter(tags: dict[str, str]) -> str:
        """An MLflow search filter matching every tag exactly.

        Values are quoted with ``'``, or ``"`` when they hold a ``'``.

        :raises ValueError: for a backtick in a key, or a value holding both quote characters, which MLflow's
            filter grammar cannot escape: refusing is safer than a filter that matches something else.
        """
        conditions = []
        for key, value in tags.items():
            value = str(value)
            if "`" in key or ("'" in value and '"' in value):
                raise ValueError(f"cannot search MLflow for tag {key!r} = {value!r}: quotes are not allowed")
            quote = '"' if "'" in value else "'"
            conditions.append(f"tags.`{key}` = {quote}{value}{quote}")
        return " AND ".join(conditions)

    def search_versions(
        self, model_name: str, tags: dict[str, str] | None = None, max_results: int | None = None
    ) -> list[ModelVersion]:
        """Versions of ``model_name`` whose tags equal ``tags``, newest first (at most ``max_results`` found)."""
        if "'" in model_name:
            raise ValueError(f"invalid registered model name {model_name!r}")
        conditions = [f"name = '{model_name}'"] + ([self.tag_filter(tags)] if tags else [])
        from mlflow.store.model_registry import SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT

        versions = self.client.search_model_versions(
            " AND ".join(conditions), max_results=max_results or SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT
        )
        return sorted(versions, key=lambda version: int(version.version), reverse=True)

    def search_runs(self, experiment_id: str, tags: dict[str, str]) -> list[Run]:
        """Runs of ``experiment_id`` whose tags equal ``tags``, newest first."""
        return self.client.search_runs([experiment_id], filter_string=self.tag_filter(tags))

    def experiment_runs(
        self, experiment_name: str, tags: dict[str, str] | None = None, max_results: int = 1000
    ) -> list[Run]:
        """Runs of the experiment named ``experiment_name`` whose tags equal ``tags``, newest first; none when
        there is no such experiment."""
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return []
        return list(
            self.client.search_runs(
                [experiment.experiment_id],
                filter_string=self.tag_filter(tags) if tags else "",
                order_by=["attributes.start_time DESC"],
                max_results=max_results,
            )
        )

    def get_run_if_any(self, run_id: str) -> Run | None:
        """Run ``run_id``, or ``None`` when the tracking server has none (deleted, or never there)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            return None

    def get_registered_model(self, model_name: str) -> RegisteredModel:
        """Registered model ``model_name``.

        :raises LookupError: when the registry has none of that name.
        """
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(model_name)
        except MlflowException as err:
            raise LookupError(f"no registered model {model_name!r}") from err

    def ensure_registered_model(self, model_name: str, description: str | None = None) -> None:
        """Create registered model ``model_name`` unless it exists."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model_name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(model_name, description=description)
            except MlflowException as race:
                if race.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise

    def register_model(self, model_uri: str, model_name: str, tags: dict[str, str]) -> ModelVersion:
        """Register ``model_uri`` (``models:/m-...`` or ``runs:/...``) as a new version of ``model_name``.

        Waits until the version is READY, so an alias set right after points at a loadable model.
        """
        import mlflow

        self.get_conn()
        self.ensure_registered_model(model_name)
        return mlflow.register_model(model_uri, model_name, tags=tags, await_registration_for=300)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point ``alias`` of ``model_name`` at ``version``."""
        self.client.set_registered_model_alias(model_name, alias, str(version))

    def get_aliases(self, model_name: str) -> dict[str, str]:
        """All aliases of ``model_name`` as ``{alias: version}`` (empty when the model does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = self.client.get_registered_model(model_name).aliases
            return {alias: str(version) for alias, version in aliases.items()}
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def pin_version(
        self, model_name: str, alias: str | None = None, version: str | None = None
    ) -> PinnedModel:
        """Resolve ``alias`` (or take ``version``) of ``model_name`` once, as a version fixed for a whole run.

        This only reads the registry: :meth:`mlops_ops.hooks.trust.TrustHook.pin` also checks the alias against
        the signed alias log and the version's signature, which is what consumers use.

        :raises LookupError: naming the model and alias (or version) when there is none.
        """
        from mlflow.exceptions import MlflowException

        from mlops_ops.core import lineage
        from mlops_ops.core.model_artifacts import SIGNATURE_TAG, PinnedModel

        if (alias is None) == (version is None):
            raise ValueError("pass exactly one of alias or version")
        if alias is not None:
            found = self.get_version_by_alias(model_name, alias)
            if found is None:
                raise LookupError(f"registered model {model_name!r} has no {alias!r} alias")
        else:
            try:
                found = self.client.get_model_version(model_name, str(version))
            except MlflowException as err:
                raise LookupError(f"registered model {model_name!r} has no version {version}: {err}") from err
        return PinnedModel(
            name=model_name,
            version=str(found.version),
            alias=alias,
            run_id=found.run_id,
            source=str(found.source),
            artifact_sha256=str((found.tags or {}).get(lineage.ARTIFACT_SHA256, "")),
            signature=str((found.tags or {}).get(SIGNATURE_TAG, "")),
        )

    def download_model(self, model: PinnedModel, destination: str) -> str:
        """Download the artifact of ``model``'s exact version into ``destination``; return the model folder.

        Verify it with :func:`mlops_ops.core.model_artifacts.verify_artifact` before loading.
        """
        import mlflow

        self.get_conn()
        return mlflow.artifacts.download_artifacts(model.uri, dst_path=destination)

    def get_or_create_run(self, experiment_id: str, tags: dict[str, str], run_name: str) -> str:
        """Id of the run of ``experiment_id`` tagged ``tags``, created (finished, named ``run_name``) when none.

        Looked up before it is created, so retries and later tasks reuse it. Two tasks that create it at the
        same moment both see both runs on their second look; each keeps the older and deletes its own newer
        one, so one run remains.
        """
        found = self.search_runs(experiment_id, tags)
        if found:
            return min(found, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
        created = self.client.create_run(experiment_id, tags=tags, run_name=run_name)
        # A run that only collects a timeline never "ends"; finished, it does not show as running forever.
        self.client.set_terminated(created.info.run_id)
        runs = self.search_runs(experiment_id, tags)
        keep = min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
        if keep != created.info.run_id:
            self.client.delete_run(created.info.run_id)
        return keep

    def monitoring_run(self, model_name: str, version: str, experiment_name: str | None = None) -> str:
        """Id of the monitoring run of ``model_name`` v``version`` (experiment ``<model>-monitoring``), made on
        first use: drift and performance checks of every interval add their points to that one timeline."""
        experiment_id = self.get_or_create_experiment(experiment_name or f"{model_name}-monitoring")
        return self.get_or_create_run(
            experiment_id,
            {"mlops.monitoring.model": model_name, "mlops.monitoring.model_version": str(version)},
            run_name=f"{model_name} v{version}",
        )

    def log_metrics_once_at_step(
        self, run_id: str, metrics: dict[str, float], step: int, timestamp_ms: int
    ) -> dict[str, list[str]]:
        """Log each of ``metrics`` at ``step`` unless the run's history of it has a point at ``step`` already.

        MLflow's metric history is append-only: logging a step again would add a second point to the chart.
        So the first values logged for a step stay, and a retry or re-run adds nothing.

        :return: ``{"logged": [names], "already_logged": [names]}``.
        """
        from mlflow.entities import Metric

        logged, already = [], []
        for name in metrics:
            if any(point.step == step for point in self.client.get_metric_history(run_id, name)):
                already.append(name)
            else:
                logged.append(name)
        if logged:
            self.client.log_batch(
                run_id, metrics=[Metric(name, float(metrics[name]), timestamp_ms, step) for name in logged]
            )
        return {"logged": logged, "already_logged": already}

    def get_run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of every metric of run ``run_id``."""
        return dict(self.client.get_run(run_id).data.metrics)

    def get_metric_history(self, run_id: str, key: str) -> list[Any]:
        """Every logged value of metric ``key`` of run ``run_id`` (MLflow ``Metric``: value, timestamp, step)."""
        return list(self.client.get_metric_history(run_id, key))

    def get_model_tags(self, model_name: str) -> dict[str, str]:
        """The tags of registered model ``model_name`` (the promotion history is kept there)."""
        return dict(self.client.get_registered_model(model_name).tags or {})

    def get_version_tags(self, model_name: str, version: str) -> dict[str, str]:
        """The tags of version ``version`` of ``model_name``."""
        return dict(self.client.get_model_version(model_name, str(version)).tags or {})

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on version ``version`` of ``model_name`` (other tags are kept)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, str(version), key, value)

    def log_json(self, run_id: str, values: dict[str, Any], artifact_file: str) -> None:
        """Write ``values`` as the JSON artifact ``artifact_file`` of run ``run_id`` (replacing one there)."""
        self.client.log_dict(run_id, values, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Write ``text`` as the artifact ``artifact_file`` of run ``run_id`` (replacing one there)."""
        self.client.log_text(run_id, text, artifact_file)

    def load_run_json(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        """The JSON artifact ``artifact_file`` of run ``run_id``, or ``None`` when the run has none (or it cannot
        be read: evidence that is missing is reported as missing, not guessed)."""
        import mlflow
        from mlflow.exceptions import MlflowException

        run = self.client.get_run(run_id)
        try:
            loaded = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{artifact_file}")
        except (MlflowException, OSError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def get_model_version(self, model_name: str, version: str) -> ModelVersion:
        """Version ``version`` of ``model_name`` (MLflow's ``MlflowException`` when it does not exist)."""
        return self.client.get_model_version(model_name, str(version))

    def get_run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of run ``run_id``."""
        return dict(self.client.get_run(run_id).data.tags)

    def get_run_experiment_id(self, run_id: str) -> str:
        """The experiment of run ``run_id``."""
        return str(self.client.get_run(run_id).info.experiment_id)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on run ``run_id`` (other tags are kept)."""
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def log_run_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Log each of ``metrics`` on run ``run_id`` (at step 0, now)."""
        for name, value in metrics.items():
            self.client.log_metric(run_id, name, value)

    def fail_run(self, run_id: str) -> None:
        """Mark run ``run_id`` as ``FAILED`` (a run left ``RUNNING`` by an interrupted try)."""
        self.client.set_terminated(run_id, status="FAILED")

    def set_model_tag(self, model_name: str, key: str, value: str) -> None:
        """Set the tag ``key`` of registered model ``model_name``."""
        self.client.set_registered_model_tag(model_name, key, value)

    def preview_model_card(
        self, model_name: str, version: str, templates: dict[str, Any], **facts: Any
    ) -> dict[str, str]:
        """Render the model card of ``version`` with ``templates`` without logging it: a team's template that
        compiles can still fail on the facts (an undefined name, a sandbox refusal), and that must be known
        before an alias moves.

        :return: ``{"markdown": text, "html": text}``.
        :raises DataError: naming the template that fails.
        """
        from mlops_ops.core import model_card

        built = model_card.build_facts(self.client, model_name, version, **facts)
        return {
            "markdown": model_card.render_markdown(built, templates.get("markdown")),
            "html": model_card.render_html(built, templates.get("html")),
        }

    def write_model_card(
        self, model_name: str, version: str, templates: dict[str, Any] | None = None, **facts: Any
    ) -> dict[str, str]:
        """Build the model card of ``version`` from the registry (its run, lineage, gate and the ``facts`` the
        caller knows: approver, reason, limitations...) and log it to the version's run and tags.

        :param templates: a team's own card templates (:func:`mlops_ops.core.model_card.check_templates`).
        :param facts: keyword arguments of :func:`mlops_ops.core.model_card.build_facts`.
        :return: where the card is (:func:`mlops_ops.core.model_card.log_model_card`).
        """
        from mlops_ops.core import model_card

        built = model_card.build_facts(self.client, model_name, version, **facts)
        return model_card.log_model_card(self.client, model_name, version, built, templates)

    def model_overviews(self, max_models: int = 100, trust: Any = None) -> list[ModelOverview]:
        """What the Models view shows of each registered model (at most ``max_models``, by name): the
        ``champion`` and ``challenger`` versions, the alias history, the latest gate decision and the latest
        drift verdict (``mlops.drift.*`` tags of the champion, else of the newest version that has them).

        :param trust: a :class:`~mlops_ops.hooks.trust.TrustHook`: the history comes from its signed alias log
            and each alias is marked when the log does not name its version. ``None``: the history tags.
        """
        from mlops_ops.core import model_overview
        from mlops_ops.core.promotion import AliasMove

        overviews = []
        for model in self.client.search_registered_models(max_results=max_models, order_by=["name ASC"]):
            aliases = {}
            versions = {}
            logged: dict[str, list[AliasMove]] = {}
            for alias, number in (model.aliases or {}).items():
                if alias in model_overview.SHOWN_ALIASES:
                    version = self.client.get_model_version(model.name, str(number))
                    versions[alias] = version
                    untrusted = None
                    if trust is not None:
                        try:
                            logged[alias] = [
                                AliasMove(**record.as_move())
                                for record in trust.alias_history(model.name, alias)
                            ]
                            untrusted = model_overview.alias_trust(str(version.version), logged[alias])
                        except Exception as err:  # a log that does not verify marks the alias, not the page
                            untrusted = f"the signed alias log does not verify: {str(err)[:160]}"
                    aliases[alias] = model_overview.version_summary(
                        str(version.version),
                        version.run_id,
                        dict(version.tags or {}),
                        self.model_version_url(model.name, str(version.version)),
                        untrusted=untrusted,
                    )
            drift, drift_version = {}, None
            candidates = [versions["champion"]] if "champion" in versions else []
            for version in candidates + self.search_versions(model.name)[:20]:
                drift = model_overview.drift_verdict(dict(version.tags or {}))
                if drift:
                    drift_version = str(version.version)
                    break
            history = (
                model_overview.newest_first([move for moves in logged.values() for move in moves])
                if trust is not None
                else model_overview.alias_history(dict(model.tags or {}))
            )
            overviews.append(
                model_overview.ModelOverview(
                    name=model.name,
                    aliases=aliases,
                    history=history,
                    latest_gate=self._latest_gate(model.name),
                    drift=drift,
                    drift_version=drift_version,
                    url=self.model_url(model.name),
                )
            )
        return overviews

    def _latest_gate(self, model_name: str) -> GateSummary | None:
        """The newest run of the model's experiment (named like the model) that recorded a gate decision."""
        from mlops_ops.core import lineage, model_overview

        experiment = self.client.get_experiment_by_name(model_name)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{lineage.GATE_PASSED}` LIKE '%'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        run = runs[0]
        return model_overview.gate_summary_of(
            run.info.run_id, dict(run.data.tags), run.info.start_time, self.run_url(run.info.run_id)
        )
