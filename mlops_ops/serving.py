"""The real-time prediction API: request fields (+ online features from Feast) -> the champion model -> a prediction.

``mlops-ops serve`` (or ``python -m mlops_ops.cli serve``) runs it with uvicorn. The model is the version the
``champion`` alias points at, resolved with ``MlflowHook.pin_version``, downloaded, and loaded only after its
sha256 matched the digest recorded at training (``model_artifacts.load_verified``). A background task checks
the alias every ``poll_seconds``; when it moves, the new version is downloaded, verified and loaded beside the
old one, then swapped in with one reference assignment: a batch in flight finishes on the model it started
with, and no request waits for or misses a model. Requests are scored in adaptive batches (whatever queued
while the previous batch ran), so throughput grows with load instead of latency exploding. A version that
fails verification is never served (the old one stays, and ``/health`` says why).

Any registered model is served, in the shape of its task (:mod:`mlops_ops.core.tasks`): the model spec's
``task`` when ``model_spec`` is given (checked against the model: a model of another task is refused, naming
both, and the API does not become ready with it), else the task of the loaded model itself. ``POST /predict``
answers, besides ``model_name``, ``model_version`` and ``missing_features`` (the online features the store had
no value for):

- binary (classes 0 and 1): ``{"prediction": 0 | 1, "probability": <probability of class 1>, ...}``, the
  prediction being 1 from ``threshold`` on (:class:`Prediction`);
- multiclass: ``{"prediction": <the most probable class, an integer or a string as trained>,
  "probabilities": {"<class>": <probability>, ...}, ...}``, the classes in the model's order
  (:class:`MulticlassPrediction`);
- regression: ``{"prediction": <the predicted value>, ...}`` (:class:`RegressionPrediction`).

The task served is fixed when the API starts (the spec's) or with the first model it loads: a later version of
another task is refused (the old one goes on serving; ``/ready`` and ``/health`` say why), as clients read the
answer's shape.

What a request holds is the project's: a :class:`PredictionRequest` subclass (``ServingConfig.request_schema``)
declares the fields and turns a request into the raw row the model spec's ``prepare`` function takes (the one
training used, so a request and a training row with the same fields get the same features) and, when the model
reads a feature service, into the entity row that service joins on; online features come from the same feature
service the training set was joined with. The model's signature decides which columns it receives. Without a
request schema, the request is built from the model's signature
(:func:`~mlops_ops.serving_guard.signature_request_model`): one field per input column, typed and required as
the signature says; that needs a model whose requests are its input columns, so neither ``prepare`` (the
config's or the spec's) nor a feature service may be set, and a model must load when the API starts. The
request schema of a running API cannot change: a later version whose signature takes other inputs is refused
(the old one goes on serving, ``/ready`` says why, the refusal is logged once); restart the API to serve it.

A model of the reference shape (ordinal encoder + ``HistGradientBoostingClassifier`` of two or more classes,
or ``HistGradientBoostingRegressor``) is scored by its trees compiled at load
(:mod:`mlops_ops.core.compiled_trees`, checked bit-for-bit equal to the model first), any other by its own
``predict_proba`` (classifiers) or ``predict`` (regressors); ``/health`` says which.

Before a request reaches ``/predict`` (:mod:`mlops_ops.serving_guard`): the bearer token when one is configured
(401), the body size (413, also for chunked bodies), then the fields: types, formats, finite numbers (NaN and
±Infinity are refused) and the value ranges of the model spec's ``bounds``, with a 422 that names each field
and never quotes what was sent. Whatever ``/health``, ``/ready``, an error or a log line says has its
credentials masked (:func:`mlops_ops.core.redaction.scrub_secrets`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from mlops_ops.core.errors import MlopsError, RefusedByPolicy, required
from mlops_ops.core.redaction import SecretScrubbingFilter, scrub_secrets
from mlops_ops.core.tasks import plain_value
from mlops_ops.serving_guard import (
    DEFAULT_MAX_BODY_BYTES,
    TOKEN_ENV,
    RequestGuard,
    bounded_model,
    check_token,
    shown_error,
    signature_request_model,
    token_matches,
    validation_error_handler,
)

if TYPE_CHECKING:
    import numpy as np

    from mlops_ops.core.compiled_trees import CompiledTrees
    from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.tasks import Predictions, TaskType

log = logging.getLogger(__name__)
# Every line this module logs, the model reload errors included, with credentials masked.
log.addFilter(SecretScrubbingFilter())


class PredictionRequest(BaseModel):
    """The base of a project's request schema: one row to score. Unknown fields, NaN and ±Infinity are refused
    (422); the value ranges of numeric fields are the model spec's ``bounds`` (:func:`create_app` serves a
    subclass carrying them), not written in the schema.

    A project subclasses it with its fields (pydantic ``Field`` constraints: patterns, lengths) and, where the
    raw row or the join keys are not simply the fields, overrides :meth:`raw_row` and :meth:`entity_row`. The
    subclass is named by ``"module:Class"`` in :class:`ServingConfig` and imported from the serving host's
    working directory (the project root), like the spec's ``prepare``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: The fields of the request the feature service joins on (used by the default :meth:`entity_row`).
    entity_keys: ClassVar[tuple[str, ...]] = ()

    def raw_row(self) -> dict[str, Any]:
        """The request as one raw row, what the spec's ``prepare`` takes (or, without ``prepare``, the model's
        input columns themselves). Default: the fields as they are."""
        return self.model_dump()

    def entity_row(self) -> dict[str, Any]:
        """The join keys of the feature service for this request. Default: the fields named in
        :attr:`entity_keys`."""
        return {key: getattr(self, key) for key in self.entity_keys}


class SignatureRequest(PredictionRequest):
    """The base of a request model built from the model's signature
    (:func:`~mlops_ops.serving_guard.signature_request_model`): its fields are the model's input columns, under
    their own names (aliases: a column may be named anything)."""

    def raw_row(self) -> dict[str, Any]:
        """The request as one row of the model's input columns (``None`` for an optional one left out)."""
        return self.model_dump(by_alias=True)


class Prediction(BaseModel):
    """A binary model's answer for one request (task ``binary``)."""

    model_config = ConfigDict(extra="forbid")

    prediction: int = Field(description="1 when the probability of class 1 is at least the threshold, else 0")
    probability: float = Field(description="the probability of class 1")
    model_name: str
    model_version: str
    missing_features: list[str] = Field(description="online features the store had no value for")


class MulticlassPrediction(BaseModel):
    """A multiclass model's answer for one request (task ``multiclass``)."""

    model_config = ConfigDict(extra="forbid")

    prediction: int | str = Field(description="the most probable class, an integer or a string as trained")
    probabilities: dict[str, float] = Field(
        description="each class's probability, in the model's class order"
    )
    model_name: str
    model_version: str
    missing_features: list[str] = Field(description="online features the store had no value for")


class RegressionPrediction(BaseModel):
    """A regression model's answer for one request (task ``regression``)."""

    model_config = ConfigDict(extra="forbid")

    prediction: float = Field(description="the predicted value")
    model_name: str
    model_version: str
    missing_features: list[str] = Field(description="online features the store had no value for")


#: The answer of each task; an API whose task is known only once a model loads documents all three.
ANSWERS: dict[str, type[BaseModel]] = {
    "binary": Prediction,
    "multiclass": MulticlassPrediction,
    "regression": RegressionPrediction,
}
Answer = Prediction | MulticlassPrediction | RegressionPrediction


class ModelSwapRefused(RefusedByPolicy):
    """A version the alias points at cannot replace the served one while the API runs (another task, or a
    signature that no longer fits the request schema); the served one stays."""


class ModelNotLoaded(MlopsError, RuntimeError):
    """The API cannot start: building its request schema from the model's signature needs a loaded model."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model and what it takes.

    :param compiled: the model's trees compiled for few-row predictions (checked bit-for-bit equal to the model
        when loaded), or ``None`` when the model is scored with its own ``predict_proba`` or ``predict``.
    :param scorer: which of the two scores requests, and why not the compiled trees.
    :param task: the task whose answers it gives; default the model's own (:func:`~mlops_ops.core.tasks.infer_task`).
    """

    pinned: PinnedModel
    model: Any
    inputs: list[ModelInput]
    loaded_at: float
    compiled: CompiledTrees | None = None
    scorer: str = "predict_proba"
    task: TaskType | None = None

    def __post_init__(self) -> None:
        if self.task is None:
            from mlops_ops.core.tasks import infer_task

            # A frozen dataclass sets a derived default this way.
            object.__setattr__(self, "task", infer_task(self.model).name)


@dataclass
class ServingConfig:
    """What the API serves.

    :param model_name: the registered model.
    :param request_schema: ``"module:Class"`` of the project's :class:`PredictionRequest` subclass: the fields
        a request holds and how they become a raw row (and the feature service's entity row); ``None``: built
        from the signature of the model loaded at start (its input columns), which needs neither ``prepare``
        (here or in the model spec) nor ``feature_service``.
    :param alias: the alias followed.
    :param feature_service: the Feast feature service read online; ``None``: the model takes only what the
        request (through ``prepare``) gives, and no feature store is opened.
    :param prepare: ``"module:function"`` turning raw rows into features (the model spec's, or its serving
        variant); ``None``: the raw row is the model's input.
    :param poll_seconds: how often the alias is checked.
    :param mlflow_conn_id: Airflow connection of MLflow (required outside the embedded profile).
    :param feast_conn_id: Airflow connection of the feature repository (likewise).
    :param trust_conn_id: Airflow connection of the deployment's trust rules (verification keys, alias log,
        pickle allowance; see :class:`~mlops_ops.hooks.trust.TrustHook`); a serving host needs no private key.
    :param threshold: probability of class 1 from which a binary model's ``prediction`` is 1.
    :param max_batch: the most requests scored in one batch.
    :param model_threads: threads (OpenMP, BLAS) one predict may use; ``0`` keeps the libraries' default (every
        core). A batch holds a few rows: extra threads only add synchronisation, and concurrency comes from
        serving requests and workers in parallel instead.
    :param compile_trees: score with the model's trees compiled at load (:mod:`mlops_ops.core.compiled_trees`,
        checked bit-for-bit equal to the model first; ~20x faster for one row) when the model is the reference
        pipeline of any task; ``False`` always uses the model's own ``predict_proba`` or ``predict``.
    :param model_spec: the model spec YAML (relative to the working directory): its ``task`` is the task served
        (a model of another task is refused) and its ``bounds`` are the accepted ranges of the request's numeric
        fields; ``None``: the loaded model's own task, types and finiteness only.
    :param max_body_bytes: the largest request body accepted; a larger one is answered 413 before it is parsed.
    :param token: the bearer token ``/predict`` requires (``Authorization: Bearer <token>``, 401 otherwise), at
        least 16 characters; ``None`` serves without authentication. ``/health`` and ``/ready`` stay open but
        show only the kind of an error to a caller without it. Never logged, and left out of ``repr``.
    :param alert_webhook_conn_id: a webhook connection (:class:`~mlops_ops.hooks.webhook.WebhookHook`) told
        when the trust rules refuse what the alias points at (an alias moved outside the project, an unsigned,
        altered or unsafe version), once per distinct refusal, and again when a version is accepted; ``None``:
        refusals are only logged and shown in ``/health``.
    """

    model_name: str
    request_schema: str | None = None
    alias: str = "champion"
    feature_service: str | None = None
    prepare: str | None = None
    poll_seconds: float = 30.0
    mlflow_conn_id: str = "mlflow_default"
    feast_conn_id: str = "feast_default"
    trust_conn_id: str = "mlops_trust_default"
    threshold: float = 0.5
    max_batch: int = 64
    model_threads: int = 1
    compile_trees: bool = True
    model_spec: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    token: str | None = field(default=None, repr=False)
    alert_webhook_conn_id: str | None = None


#: The longest refusal text sent to the alert webhook (a model id and one reason fit easily).
ALERT_TEXT_CHARS = 1500


@dataclass
class ModelSlot:
    """The model being served, replaced atomically when the alias moves.

    :param task: the task whose answers the API gives: the model spec's (``declared_task``), else set by the first
        model loaded; a later version of another task is refused.
    :param declared_task: the model spec's ``task``, checked against every model loaded; ``None`` without a spec.
    :param inputs: the signature inputs the request schema was built from; a later version taking other inputs
        is refused. ``None`` when the project's request schema is served (any signature it can feed).
    :param refused: why the version the alias points at is not served while another one is (a
        :class:`ModelSwapRefused` or a task mismatch), ``None`` otherwise.
    """

    config: ServingConfig
    current: LoadedModel | None = None
    last_error: str | None = None
    last_check: float | None = None
    reloads: int = 0
    task: TaskType | None = None
    declared_task: TaskType | None = None
    inputs: list[ModelInput] | None = None
    refused: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _alerted: str | None = None
    _refused_version: str | None = None

    def refresh(self) -> bool:
        """Resolve the alias; when it points at another version, load that one and swap it in.

        A version whose task is not the one served, or whose signature no longer fits the request schema built
        from the first one, is refused once (logged, kept in ``refused`` and ``last_error``) and not downloaded
        again while the alias points at it.

        :return: whether a new model was swapped in. Errors are kept in ``last_error``, never raised: the
            current model goes on serving.
        """
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import model_inputs
        from mlops_ops.core.tasks import TaskMismatchError
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.hooks.trust import TrustHook

        # One refresh at a time: a slow download must not be raced by the next poll.
        with self._lock:
            self.last_check = time.time()
            try:
                hook = MlflowHook(self.config.mlflow_conn_id)
                # Every poll checks the alias against the signed alias log (an out-of-band move is refused and
                # the current model goes on serving) and the version's signature; the load re-verifies all.
                trust = TrustHook(self.config.trust_conn_id)
                pinned = trust.pin(hook, self.config.model_name, alias=self.config.alias)
                if self.current is not None and self.current.pinned.version == pinned.version:
                    self.last_error = self.refused = self._refused_version = None
                    self._alert_accepted(pinned.version)
                    return False
                if (
                    pinned.version == self._refused_version
                ):  # refused already: said once, not downloaded again
                    self.last_error = self.refused
                    return False
                self.refused = self._refused_version = None
                with tempfile.TemporaryDirectory(prefix="mlops-serving-") as folder:
                    trusted, local = trust.load(hook, pinned, folder)
                    model = trusted.model
                    inputs = model_inputs(local)
                task = self._task_of(model, pinned)
                self._check_swap(task, inputs, pinned)
                compiled, scorer = self._compile(model, inputs, task)
                loaded = LoadedModel(
                    pinned=pinned,
                    model=model,
                    inputs=inputs,
                    loaded_at=time.time(),
                    compiled=compiled,
                    scorer=scorer,
                    task=task,
                )
            except (ModelSwapRefused, TaskMismatchError) as err:
                self._refuse(pinned.version, f"{type(err).__name__}: {err}")
                return False
            except Exception as err:
                self.last_error = f"{type(err).__name__}: {err}"
                log.error(
                    "could not load %s@%s: %s", self.config.model_name, self.config.alias, self.last_error
                )
                if isinstance(err, ModelIntegrityError):
                    self._alert_refused(self.last_error)
                return False
            previous = self.current
            self.current = loaded  # the swap: one reference assignment
            self.task = task
            self.last_error = None
            self.reloads += 1
            self._alert_accepted(pinned.version)
            _freeze_long_lived_objects()
            log.info(
                "serving %s version %s (was %s)",
                pinned.name,
                pinned.version,
                previous.pinned.version if previous else None,
            )
            return True

    def _task_of(self, model: Any, pinned: PinnedModel) -> TaskType:
        """The task ``model`` is served as: the spec's when it declares one (checked against the model), else the
        model's own.

        :raises TaskMismatchError: naming the spec's task and the model's.
        """
        from mlops_ops.core.tasks import TaskMismatchError, get_task, infer_task

        own = infer_task(model)
        if self.declared_task is None:
            return own.name
        declared = get_task(self.declared_task)
        try:
            declared.check_model(model, f"{pinned.name} version {pinned.version}")
        except TaskMismatchError as err:
            raise TaskMismatchError(
                f"the model spec declares task {declared.name!r}, but {pinned.name} version {pinned.version} is "
                f"a {own.name} model ({err})"
            ) from err
        return declared.name

    def _check_swap(self, task: TaskType, inputs: list[ModelInput], pinned: PinnedModel) -> None:
        """Refuse a version the running API cannot serve in place of the current one.

        :raises ModelSwapRefused: when its task is not the one served, or its inputs are not those the request
            schema was built from.
        """
        serving = f"version {self.current.pinned.version}" if self.current else "no version"
        if self.task is not None and task != self.task:
            raise ModelSwapRefused(
                f"{pinned.name} version {pinned.version} is a {task} model, but this API answers {self.task} "
                f"predictions; restart the API to serve it (serving {serving})"
            )
        if self.inputs is not None and _columns_of(inputs) != _columns_of(self.inputs):
            change = _inputs_change(self.inputs, inputs)
            raise ModelSwapRefused(
                f"the signature of {pinned.name} version {pinned.version} takes other inputs than the request "
                f"schema, which was built from the signature when the API started ({change}); a running API "
                f"cannot change its request schema: restart the API to serve it (serving {serving})"
            )

    def _refuse(self, version: str, error: str) -> None:
        """Keep the current model, remember the refused version and say why, once."""
        self.last_error = self.refused = error
        self._refused_version = version
        log.warning(
            "not serving %s version %s (alias %s): %s",
            self.config.model_name,
            version,
            self.config.alias,
            error,
        )

    def _alert_refused(self, error: str) -> None:
        """Tell the alert webhook that the trust rules refused the alias's version (once per distinct refusal:
        the poll repeats it every ``poll_seconds``)."""
        if error == self._alerted:
            return
        self._alerted = error
        serving = f"v{self.current.pinned.version}" if self.current else "nothing"
        self._post_alert(
            f"{self.config.model_name}@{self.config.alias}: the prediction API refused the version the alias "
            f"points at and keeps serving {serving}. {error}"
        )

    def _alert_accepted(self, version: str) -> None:
        """After a refusal was alerted, tell the webhook that a version is accepted again."""
        if self._alerted is None:
            return
        self._alerted = None
        self._post_alert(
            f"{self.config.model_name}@{self.config.alias}: the prediction API accepts version {version} again"
        )

    def _post_alert(self, text: str) -> None:
        if not self.config.alert_webhook_conn_id:
            return
        from mlops_ops.hooks.webhook import WebhookHook

        text = scrub_secrets(text)
        if len(text) > ALERT_TEXT_CHARS:
            text = text[: ALERT_TEXT_CHARS - 3] + "..."
        try:
            WebhookHook(webhook_conn_id=self.config.alert_webhook_conn_id).post({"text": text})
        except Exception as err:  # an alert that cannot be sent must not stop the poll; it is logged
            log.warning("could not send the alert to %s: %s", self.config.alert_webhook_conn_id, err)

    def _compile(
        self, model: Any, inputs: list[ModelInput], task: TaskType | None = None
    ) -> tuple[CompiledTrees | None, str]:
        """The model's compiled trees and ``"compiled trees"``, or ``None`` and why the model scores itself.

        :param task: the task served; default judged by the model (``predict_proba`` when it has one).
        """
        own = "predict" if task == "regression" or not hasattr(model, "predict_proba") else "predict_proba"
        if not self.config.compile_trees:
            return None, f"{own} (compile_trees is off)"
        from mlops_ops.core.compiled_trees import compile_pipeline

        try:
            return compile_pipeline(model, [spec.name for spec in inputs]), "compiled trees"
        except (
            Exception
        ) as err:  # NotCompilable, or anything else: compiling is an optimisation, never a gate
            log.warning("scoring %s with its own %s: %s", self.config.model_name, own, err)
            return None, f"{own} (not compiled: {err})"


def _columns_of(inputs: Sequence[ModelInput]) -> list[tuple[str, str, bool]]:
    """What a request schema built from a signature depends on: each column's name, type and whether required."""
    return [(column.name, column.type, column.required) for column in inputs]


#: How many column names a description of a signature change lists per kind of change.
LISTED_COLUMNS = 5


def _inputs_change(before: Sequence[ModelInput], after: Sequence[ModelInput]) -> str:
    """The difference between two signatures' inputs, in words (a few names per kind of change)."""
    old = {column.name: column for column in before}
    new = {column.name: column for column in after}
    changes = {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "retyped": [
            name
            for name in new
            if name in old and (old[name].type, old[name].required) != (new[name].type, new[name].required)
        ],
    }
    parts = []
    for kind, names in changes.items():
        if names:
            shown = ", ".join(repr(str(name)[:40]) for name in names[:LISTED_COLUMNS])
            more = f" and {len(names) - LISTED_COLUMNS} more" if len(names) > LISTED_COLUMNS else ""
            parts.append(f"{kind} {shown}{more}")
    return "; ".join(parts) or "the columns are in another order"


def _freeze_long_lived_objects() -> None:
    """Move every object alive now (libraries, registry, model) out of the garbage collector's sight.

    A worker holds ~500,000 objects once Feast, MLflow, pandas and the model are loaded; each full collection
    walks all of them, ~350 ms on this 2-core machine, and the interpreter starts one whenever enough
    requests' worth of objects has survived: a request that lands on it waits the whole time (p99 300 ms,
    max 964 ms at 100 requests/s before this). Frozen objects are still freed by reference counting when they
    are dropped (a replaced model's are); only reference cycles among them would stay.
    """
    gc.freeze()


def answers(
    predictions: Predictions, pinned: PinnedModel, missing_features: Sequence[list[str]]
) -> list[Answer]:
    """One answer per row of ``predictions``, in the shape of their task.

    :param missing_features: per row, the online features the store had no value for.
    """
    meta = {"model_name": pinned.name, "model_version": pinned.version}
    if predictions.task == "binary":
        probabilities = required(predictions.probabilities, "a binary prediction's probabilities")
        return [
            Prediction(
                prediction=int(label), probability=float(probability), missing_features=missing, **meta
            )
            for label, probability, missing in zip(
                predictions.label, probabilities, missing_features, strict=True
            )
        ]
    if predictions.task == "multiclass":
        # JSON keys are text: a class 2 is the key "2".
        keys = [str(value) for value in required(predictions.classes, "a multiclass prediction's classes")]
        return [
            MulticlassPrediction(
                prediction=plain_value(label),
                probabilities=dict(zip(keys, row.tolist(), strict=True)),
                missing_features=missing,
                **meta,
            )
            for label, row, missing in zip(
                predictions.label,
                required(predictions.probabilities, "class probabilities"),
                missing_features,
                strict=True,
            )
        ]
    return [
        RegressionPrediction(prediction=float(value), missing_features=missing, **meta)
        for value, missing in zip(predictions.label, missing_features, strict=True)
    ]


class Predictor:
    """Turns requests into the model's input columns: prepared request fields + online features."""

    def __init__(self, config: ServingConfig) -> None:
        from mlops_ops.core.modelspec import load_callable

        self.config = config
        self.prepare = load_callable(config.prepare) if config.prepare else None
        self.store: Any = None
        self.service: Any = None
        self.feature_names: list[str] = []
        if config.feature_service:
            from mlops_ops.hooks.feast import FeastHook

            self.store = FeastHook(config.feast_conn_id).store
            self.service = self.store.get_feature_service(config.feature_service)
            self.feature_names = [f.name for p in self.service.feature_view_projections for f in p.features]
        self._thread_limit: Any = None

    def features(self, requests: list[PredictionRequest]) -> dict[str, Sequence[Any]]:
        """One column per feature, one value per request: the prepared request fields (pandas Series), then the
        online features the request does not give (Python values, ``None`` where the store has none)."""
        import pandas as pd

        rows = [request.raw_row() for request in requests]
        # Column by column: pandas builds a frame from a list of dicts several times slower.
        frame = pd.DataFrame({key: [row[key] for row in rows] for key in rows[0]})
        if self.prepare is not None:
            frame = self.prepare(frame)
        # Columns, not one frame: the model takes arrays, and joining the online values onto the frame cost
        # more than the model.
        columns: dict[str, Sequence[Any]] = dict(frame.items())
        if self.service is not None:
            entities = [request.entity_row() for request in requests]
            online = self.store.get_online_features(features=self.service, entity_rows=entities).to_dict()
            for name in self.feature_names:
                columns.setdefault(name, online[name])
        return columns

    def score(self, requests: list[PredictionRequest], current: LoadedModel) -> list[Answer]:
        """Predictions for a batch of requests with one model: one ``prepare``, one online read, one predict.

        :return: one answer per request, in the shape of the model's task (see the module's docstring).
        """
        import numpy as np
        import pandas as pd

        from mlops_ops.core.tasks import get_task

        task: TaskType = required(current.task, "the served model's task")  # LoadedModel fills it in
        features = self.features(requests)
        columns = self.model_columns(features, current.inputs)
        if current.compiled is not None:
            predictions = current.compiled.predictions(columns, task, self.config.threshold)
        else:
            # Built from arrays in one go: a Series per column cost more than the prediction itself.
            inputs = pd.DataFrame(columns, index=pd.RangeIndex(len(requests)))
            with self._model_threads():
                predictions = get_task(task).predict(current.model, inputs, self.config.threshold)
        missing = np.zeros((len(requests), len(self.feature_names)), dtype=bool)
        for position, name in enumerate(self.feature_names):
            missing[:, position] = pd.isna(np.asarray(features[name], dtype=object))
        missing_features = [
            [name for name, absent in zip(self.feature_names, row, strict=True) if absent] for row in missing
        ]
        return answers(predictions, current.pinned, missing_features)

    def _model_threads(self) -> Any:
        """A context limiting the predicting thread's OpenMP/BLAS threads to ``model_threads``.

        Set in the thread that predicts, on every call: OpenMP's thread count is per thread, and batches are
        scored in worker threads (a limit set once in the main thread does not reach them). Without it, one
        gradient-boosting predict of a single row took 8 ms per 100 trees on the loaded 2-core machine, all
        of it in OpenMP barriers.
        """
        import contextlib

        if self.config.model_threads <= 0:
            return contextlib.nullcontext()
        if self._thread_limit is None:
            from threadpoolctl import ThreadpoolController

            # Created once, after the model loaded its native libraries: the controller lists what is loaded.
            self._thread_limit = ThreadpoolController()
        return self._thread_limit.limit(limits=self.config.model_threads)

    @staticmethod
    def model_columns(
        features: Mapping[str, Sequence[Any]], inputs: list[ModelInput]
    ) -> dict[str, np.ndarray]:
        """One array per column of the model's signature, typed as it was trained: text as objects with
        ``None`` for missing, the others float64 with NaN for missing.

        :param features: what :meth:`features` returns (pandas Series or lists of Python values).
        """
        import numpy as np
        import pandas as pd

        missing = [spec.name for spec in inputs if spec.name not in features]
        if missing:
            raise LookupError(
                f"the model needs {missing}, which neither the request nor the online store gives"
            )
        columns = {}
        for spec in inputs:
            values = features[spec.name]
            if spec.is_text:
                text = np.array(values, dtype=object)
                text[pd.isna(text)] = None
                columns[spec.name] = text
            elif isinstance(values, pd.Series) and values.dtype.kind in "biuf":
                # As in training: floats, so a missing online feature is NaN, which the model accepts.
                columns[spec.name] = values.to_numpy(dtype="float64", na_value=np.nan)
            else:  # online values arrive as Python objects (None for a missing one)
                columns[spec.name] = np.asarray(pd.to_numeric(values, errors="coerce"), dtype="float64")
        return columns


def create_app(config: ServingConfig, *, start_polling: bool = True) -> FastAPI:
    """The FastAPI application.

    Without a request schema, the model the alias points at is loaded here, before the application exists: its
    signature makes the request model, fixed for the application's life (the lifespan's first check then finds
    it current).

    :param config: what to serve.
    :param start_polling: check the alias in the background every ``poll_seconds`` (tests may call
        ``app.state.slot.refresh()`` themselves).
    :raises ModelNotLoaded: without a request schema, when no model loads to build it from.
    :raises ValueError: (a ``DataError``) when the request settings are wrong (:func:`checked_request_model`),
        or the loaded model's signature cannot make a request schema.
    """
    request_model, spec = _request_settings(config)
    declared = spec.task if spec is not None else None
    slot = ModelSlot(config, task=declared, declared_task=declared)
    if request_model is None:
        request_model = _signature_request(slot, spec)
    state: dict[str, Any] = {"predictor": None, "predictor_error": None}

    def ensure_predictor() -> bool:
        """Open what prepares requests (the ``prepare`` function, the feature store) unless it is open; a
        failure leaves the API not ready and is retried at every poll, logged once per distinct reason: a server
        started before the feature repository was applied becomes ready once it is, without a restart."""
        if state["predictor"] is not None:
            return True
        try:
            state["predictor"] = Predictor(config)
        except Exception as err:  # not ready, and /health says why
            reason = scrub_secrets(f"{type(err).__name__}: {err}")
            if reason != state["predictor_error"]:
                log.error("cannot prepare requests (prepare function or feature store), retrying: %s", reason)
            state["predictor_error"] = reason
            return False
        if state["predictor_error"] is not None:
            log.info("requests can be prepared now (was: %s)", state["predictor_error"])
            state["predictor_error"] = None
        return True

    async def poll() -> None:
        while True:
            await asyncio.sleep(config.poll_seconds)
            await asyncio.to_thread(ensure_predictor)
            await asyncio.to_thread(slot.refresh)

    async def batch_scoring() -> None:
        # Requests queue here and are scored together, whatever is waiting when the previous batch is done:
        # pandas, Feast and the model cost per call far more than per row, so under load batches grow and
        # throughput with them, while an idle server scores each request alone without waiting.
        while True:
            batch = [await state["queue"].get()]
            while not state["queue"].empty() and len(batch) < config.max_batch:
                batch.append(state["queue"].get_nowait())
            current = slot.current  # one model per batch: a swap never splits a batch
            try:
                results = await asyncio.to_thread(
                    state["predictor"].score, [item for item, _ in batch], current
                )
            except Exception as err:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(ensure_predictor)
        await asyncio.to_thread(slot.refresh)
        _freeze_long_lived_objects()  # again: the feature store's objects when no model loaded
        state["queue"] = asyncio.Queue()
        tasks = [asyncio.create_task(batch_scoring())]
        if start_polling:
            tasks.append(asyncio.create_task(poll()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    app = FastAPI(title="mlops-ops prediction API", lifespan=lifespan)
    app.state.slot = slot
    # What the poll runs besides the alias check (tests without polling call it themselves).
    app.state.ensure_predictor = ensure_predictor
    app.state.config = config
    # Health checks and the API's description are open; every other path, present or added later, needs the
    # token when one is configured.
    open_paths = ["/health", "/ready", app.openapi_url, app.docs_url, app.redoc_url]
    open_paths.append(app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=config.max_body_bytes,
        token=config.token,
        open_paths=[path for path in open_paths if path],
    )
    app.add_exception_handler(RequestValidationError, validation_error_handler)

    def detailed(request: Request) -> bool:
        """Whether the caller may read error messages: no token is configured, or it presented the token."""
        return config.token is None or token_matches(request.headers.get("authorization"), config.token)

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        """Liveness: the process answers; the model, the task it answers and its last reload error, if any."""
        current = slot.current
        return {
            "status": "ok",
            "model_name": config.model_name,
            "alias": config.alias,
            "model_version": current.pinned.version if current else None,
            "task": slot.task,
            "scorer": current.scorer if current else None,
            "reloads": slot.reloads,
            "last_error": shown_error(
                slot.last_error or state["predictor_error"], detailed=detailed(request)
            ),
        }

    @app.get("/ready")
    def ready(request: Request) -> JSONResponse:
        """Readiness: 200 once a verified model is loaded and the feature store is open, else 503.

        ``reason`` says why not; while ready, why the version the alias points at is not the one served (another
        task, or a signature that no longer fits the request schema), or ``null``.
        """
        current = slot.current
        ok = current is not None and state["predictor"] is not None
        if ok:
            reason = shown_error(slot.refused, detailed=detailed(request))
        else:
            error = shown_error(slot.last_error or state["predictor_error"], detailed=detailed(request))
            reason = error or "no model loaded yet"
        body = {
            "ready": ok,
            "model_version": current.pinned.version if current else None,
            "reason": reason,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    # The token is checked by RequestGuard, before the body is read; this only declares it in the OpenAPI
    # schema, so the interactive docs offer to send it.
    bearer = [Security(HTTPBearer(auto_error=False))] if config.token is not None else []

    async def predict(request: PredictionRequest) -> Answer:
        """Score one request with the model the alias points at.

        The answer's shape is the model's task: binary ``{"prediction": 0 or 1, "probability": p}`` (the
        probability of class 1; 1 from the threshold on), multiclass ``{"prediction": class, "probabilities":
        {class: p, ...}}``, regression ``{"prediction": value}``; each with ``model_name``, ``model_version`` and
        ``missing_features``.
        """
        if slot.current is None or state["predictor"] is None:
            raise HTTPException(status_code=503, detail="not ready: no verified model or feature store yet")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        await state["queue"].put((request, future))
        try:
            return await future
        except LookupError as err:  # the model needs a column nobody provides: a deployment error
            raise HTTPException(status_code=500, detail=scrub_secrets(str(err))) from err

    # The request model is built from the spec at run time; FastAPI reads the body's type from the annotation.
    predict.__annotations__["request"] = request_model
    # The answer of the task served, when it is known before a model loads; else any of the three.
    response_model = ANSWERS[slot.task] if slot.task is not None else Answer
    app.post("/predict", response_model=response_model, dependencies=bearer)(predict)
    return app


def _signature_request(slot: ModelSlot, spec: ModelSpec | None) -> type[PredictionRequest]:
    """The request model built from the signature of the model the alias points at, loaded now.

    The model stays loaded (the lifespan's first check finds it current), its inputs are kept in ``slot.inputs``
    (a later version taking others is refused) and its task becomes the task served.

    :raises ModelNotLoaded: when no model loads.
    :raises DataError: when its signature names no input column or one a request cannot carry.
    """
    from mlops_ops.core.errors import DataError

    config = slot.config
    slot.refresh()
    if slot.current is None:
        raise ModelNotLoaded(
            f"no request schema was given, so the request is built from the model's signature, and "
            f"{config.model_name}@{config.alias} did not load: {slot.last_error}"
        )
    inputs = slot.current.inputs
    where = f"{config.model_name} version {slot.current.pinned.version}"
    if not inputs:
        raise DataError(f"{where} has no signature naming its input columns; give a request schema")
    try:
        model = signature_request_model(
            inputs, spec.bounds if spec else {}, base=SignatureRequest, name=_schema_name(config.model_name)
        )
    except ValueError as err:
        raise DataError(f"{config.model_spec or where}: {err}") from err
    slot.inputs = list(inputs)
    return model


def _schema_name(model_name: str) -> str:
    """The request model's name in the OpenAPI schema: ``house_prices`` -> ``HousePricesRequest``."""
    words = "".join(character if character.isalnum() else " " for character in model_name).split()
    return "".join(word[:1].upper() + word[1:] for word in words) + "Request"


def checked_request_model(config: ServingConfig) -> type[PredictionRequest] | None:
    """The request model ``config`` serves: its ``request_schema`` with the value ranges of the model spec's
    ``bounds`` (none without a spec), after checking the request-handling settings; ``None`` when no request
    schema is given and the request model is to be built from the signature of the model loaded at start
    (:func:`create_app`).

    :raises ValueError: (a ``DataError`` for the spec and the schema) naming what is wrong: a request schema
        that cannot be imported or is no :class:`PredictionRequest`, a spec that cannot be read or whose bounds
        do not fit the request, no request schema where ``prepare`` or a feature service needs one, a body limit
        below 1, a token too short.
    """
    return _request_settings(config)[0]


def _request_settings(config: ServingConfig) -> tuple[type[PredictionRequest] | None, ModelSpec | None]:
    """:func:`checked_request_model` and the model spec it read (``None`` without one)."""
    from mlops_ops.core.errors import DataError
    from mlops_ops.core.modelspec import ModelSpec, load_callable

    if config.max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {config.max_body_bytes}")
    if config.token is not None:
        check_token(config.token)
    if config.request_schema is None:
        spec = ModelSpec.load(config.model_spec) if config.model_spec else None
        _check_signature_request(config, spec)
        return None, spec
    try:
        schema = load_callable(config.request_schema)
    except ValueError as err:
        raise DataError(f"request schema: {err}") from err
    if not (isinstance(schema, type) and issubclass(schema, PredictionRequest)):
        raise DataError(
            f"request schema {config.request_schema!r} is not a subclass of mlops_ops.serving.PredictionRequest"
        )
    if not config.model_spec:
        return schema, None
    spec = ModelSpec.load(config.model_spec)
    try:
        return bounded_model(schema, spec.bounds), spec
    except ValueError as err:
        raise DataError(f"{config.model_spec}: {err}") from err


def _check_signature_request(config: ServingConfig, spec: ModelSpec | None) -> None:
    """Refuse to build the request from the model's signature where it cannot carry what the model needs.

    :raises DataError: when ``prepare`` (the config's or the spec's) or a feature service is set: the request
        then carries raw columns or join keys that the signature does not describe.
    """
    from mlops_ops.core.errors import DataError

    prepare = config.prepare or (spec.prepare if spec is not None else None)
    if prepare:
        origin = "--prepare" if config.prepare else f"the model spec {config.model_spec}"
        raise DataError(
            f"no request schema was given, but {origin} names a prepare function ({prepare}): a request then "
            "carries the raw columns it takes, which the model's signature does not describe; give a request "
            "schema (--request-schema MODULE:CLASS, a subclass of mlops_ops.serving.PredictionRequest) "
            "declaring them"
        )
    if config.feature_service:
        raise DataError(
            f"no request schema was given, but the feature service {config.feature_service!r} is read: a "
            "request then carries the service's join keys, which the model's signature does not describe; "
            "give a request schema (--request-schema MODULE:CLASS) declaring them and its entity row"
        )


#: The configuration of each worker process, as JSON of :class:`ServingConfig`'s fields.
CONFIG_ENV = "MLOPS_SERVING_CONFIG"


def app_from_environment() -> FastAPI:
    """The application of one uvicorn worker, configured from ``$MLOPS_SERVING_CONFIG`` (and its bearer token,
    if any, from ``$MLOPS_SERVING_TOKEN``)."""
    import json

    values = json.loads(os.environ.get(CONFIG_ENV) or "{}")
    # The token travels in its own variable, never in the configuration's JSON.
    values["token"] = (os.environ.get(TOKEN_ENV) or "").strip() or None
    return create_app(ServingConfig(**values))


def serve(config: ServingConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API with uvicorn (blocks). Each of ``workers`` processes loads the model and follows the alias
    on its own: a move reaches every worker within ``poll_seconds``.

    :raises ValueError: before anything starts, when the request-handling settings are wrong
        (:func:`checked_request_model`).
    """
    import json
    from dataclasses import asdict

    import uvicorn

    checked_request_model(config)  # here, not in each worker: one error instead of a traceback per worker

    os.environ[CONFIG_ENV] = json.dumps(
        {key: value for key, value in asdict(config).items() if key != "token"}
    )
    if config.token is not None:
        os.environ[TOKEN_ENV] = config.token
    uvicorn.run(
        "mlops_ops.serving:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=_log_config(),
        access_log=False,
        # Longer than a client's idle pool time: a connection closed under a client that is reusing it is a
        # failed request.
        timeout_keep_alive=75,
    )


def _log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with credentials masked on every line its handler writes.

    The handler's filter covers what any library logs (MLflow, Feast, redis, uvicorn's tracebacks), which a
    filter on this module's logger would not. Records of the root logger (libraries' warnings) and of
    ``mlops_ops`` (this API's model swaps and reload errors) go through it too, instead of Python's unfiltered
    last-resort handler.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["scrub_secrets"] = {"()": SecretScrubbingFilter}
    # Not the access handler: its formatter reads the record's arguments, and access_log is off.
    config["handlers"]["default"].setdefault("filters", []).append("scrub_secrets")
    config["loggers"]["mlops_ops"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
