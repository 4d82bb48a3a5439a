"""The base of the operators that work on the model registry: connections declared once, hooks built on first
use, and the project's exceptions mapped to Airflow's (fail now, or let Airflow retry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import DataError, RefusedByPolicy
from mlops_ops.core.tasks import TaskMismatchError
from mlops_ops.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mlops_ops.core.storage import ObjectStore
    from mlops_ops.hooks.trust import TrustHook

#: The trust connection's default id (:attr:`mlops_ops.hooks.trust.TrustHook.default_conn_name`; the hook
#: module is imported only when a task uses it, not when a DAG is parsed).
TRUST_CONN_ID = "mlops_trust_default"

#: What a task cannot fix by trying again: data refused, a rule's refusal, a model of another task than the spec
#: declares. A service that did not answer
#: (:class:`~mlops_ops.core.services.ServiceUnavailable`) and anything unexpected are left to Airflow's retries.
NOT_RETRIED: tuple[type[BaseException], ...] = (DataError, RefusedByPolicy, TaskMismatchError)


#: The connection operators read and write object-store URIs through unless told otherwise.
STORAGE_CONN_ID = "aws_default"

_UNSET: Any = object()


class ObjectStorageBaseOperator(BaseOperator):
    """
    What an operator that reads or writes data files shares: local paths, ``s3://``, ``gs://`` and ``abfs://``
    URIs alike, reached through one Airflow connection (:meth:`object_store`).

    :param storage_conn_id: the connection of the object store: type ``aws`` for ``s3://``, ``wasb`` for
        ``abfs://``, ``google_cloud_platform`` for ``gs://`` (what each needs:
        :func:`~mlops_ops.hooks.object_storage.object_store_for`). Never read for local paths.
    :param aws_conn_id: the former name of ``storage_conn_id``; deprecated.
    """

    def __init__(
        self, *, storage_conn_id: str | None = STORAGE_CONN_ID, aws_conn_id: Any = _UNSET, **kwargs: Any
    ) -> None:
        if aws_conn_id is not _UNSET:
            import warnings

            from airflow.exceptions import AirflowProviderDeprecationWarning

            if storage_conn_id != STORAGE_CONN_ID and storage_conn_id != aws_conn_id:
                raise ValueError("pass storage_conn_id only: aws_conn_id is its former name")
            warnings.warn(
                "aws_conn_id is deprecated: pass storage_conn_id (the same connection)",
                AirflowProviderDeprecationWarning,
                stacklevel=3,
            )
            storage_conn_id = aws_conn_id
        super().__init__(**kwargs)
        self.storage_conn_id = storage_conn_id

    def object_store(self, uris: str | Iterable[str]) -> ObjectStore | None:
        """How to reach the object store ``uris`` are in, from ``storage_conn_id``; ``None`` when all are local."""
        from mlops_ops.hooks.object_storage import object_store_for

        return object_store_for(uris, self.storage_conn_id)


class MlflowBaseOperator(BaseOperator):
    """
    What every operator that works with MLflow shares: the connection as an argument, the hook over it
    (:attr:`hook`) built when the task first uses it (never when the DAG is parsed), and :meth:`failing`, which
    turns the errors a retry cannot fix into the operator's own ``AirflowFailException`` subclass
    (:attr:`failure`) with what the task was doing in the message.

    :param mlflow_conn_id: MLflow connection (tracking server and registry).
    """

    #: The exception the operator fails with when a retry cannot help (set by each operator).
    failure: ClassVar[type[AirflowFailException]] = AirflowFailException

    def __init__(self, *, mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @contextmanager
    def failing(self, doing: str, *also: type[BaseException]) -> Iterator[None]:
        """A block whose refusals fail the task at once: a :data:`NOT_RETRIED` error (and any of ``also``, e.g.
        ``FileNotFoundError`` for a missing input) is re-raised as :attr:`failure` with the message
        ``"<doing>: <error>"``; Airflow's own failures, a service that did not answer and everything else pass
        through unchanged (a service may answer on the next try).

        :param doing: what the block does, for the message (``"cannot evaluate the challenger"``).
        """
        from mlops_ops.core.services import ServiceUnavailable

        try:
            yield
        except (AirflowFailException, ServiceUnavailable):
            raise
        except (*NOT_RETRIED, *also) as err:
            raise self.failure(f"{doing}: {err}") from err


class RegistryOperator(MlflowBaseOperator):
    """
    What every operator that loads, signs or moves registered models shares: the MLflow connection and the
    deployment's trust connection, and their hooks (:attr:`hook`, :attr:`trust`), built on first use.

    :param mlflow_conn_id: MLflow connection (tracking server and registry).
    :param trust_conn_id: the deployment's trust connection (verification keys, signing key where this worker
        signs, alias log, pickle allowance; see :class:`~mlops_ops.hooks.trust.TrustHook`).
    """

    def __init__(self, *, trust_conn_id: str = TRUST_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trust_conn_id = trust_conn_id

    @cached_property
    def trust(self) -> TrustHook:
        """The trust hook of ``trust_conn_id``."""
        from mlops_ops.hooks.trust import TrustHook

        return TrustHook(trust_conn_id=self.trust_conn_id)
