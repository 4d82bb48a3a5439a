"""Hook for a Prometheus Pushgateway: batch jobs push their last figures, Prometheus scrapes the gateway."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from mlops_ops.core.errors import MlopsError

DEFAULT_PORT = 9091
DEFAULT_TIMEOUT = 10.0
#: Prometheus' data model: https://prometheus.io/docs/concepts/data_model/
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PushgatewayError(MlopsError, AirflowException):
    """The samples are not valid Prometheus metrics, or the gateway refused them or could not be reached."""


@dataclass(frozen=True)
class MetricSample:
    """One gauge value to push.

    :param name: the metric name, e.g. ``mlops_live_metric``.
    :param documentation: the ``# HELP`` text (the same for every sample of one name).
    :param value: the value.
    :param labels: label names to values, e.g. ``{"model": "churn", "version": "3", "metric": "f1"}``
        (the same label names for every sample of one name).
    """

    name: str
    documentation: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class PushgatewayHook(BaseHook):
    """
    Pushes gauges to a Prometheus Pushgateway through one Airflow connection.

    The connection's *Host* is the gateway's host name (or a full ``http(s)://host:port`` URL), *Port* its
    port (default 9091), *Schema* ``http`` or ``https`` (default ``http``); *Login* and *Password*, when set,
    are sent as HTTP basic auth. The extra may set ``timeout`` (seconds per request, default 10).

    :param pushgateway_conn_id: Airflow connection id of the gateway.
    :param timeout: seconds per request; ``None`` reads the connection's extra.
    """

    conn_name_attr = "pushgateway_conn_id"
    default_conn_name = "pushgateway"
    conn_type = "prometheus_pushgateway"
    hook_name = "Prometheus Pushgateway"

    def __init__(
        self, pushgateway_conn_id: str = default_conn_name, timeout: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pushgateway_conn_id = pushgateway_conn_id
        self.timeout = timeout

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels of the connection form in the Airflow UI."""
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Scheme (http or https)", "login": "Username (basic auth)"},
            "placeholders": {"host": "pushgateway", "port": str(DEFAULT_PORT), "schema": "http"},
        }

    @cached_property
    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.pushgateway_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise PushgatewayError(
                f"connection {self.pushgateway_conn_id!r} has no Host: set the gateway's host"
            )
        if "://" in host:
            parts = urlsplit(host)
            scheme, hostname, port = parts.scheme, parts.hostname, parts.port
        else:
            scheme, hostname, port = (conn.schema or "http").strip().lower(), host, None
        if scheme not in ("http", "https") or not hostname:
            raise PushgatewayError(
                f"connection {self.pushgateway_conn_id!r}: the gateway must be reached over http or https, "
                f"got scheme {scheme!r} and host {hostname!r}"
            )
        port = port or conn.port or DEFAULT_PORT
        timeout = (
            self.timeout if self.timeout is not None else conn.extra_dejson.get("timeout", DEFAULT_TIMEOUT)
        )
        return {
            "url": f"{scheme}://{hostname}:{port}",
            "login": conn.login or None,
            "password": conn.password or None,
            "timeout": float(timeout),
        }

    @property
    def url(self) -> str:
        """The gateway's base URL, e.g. ``http://pushgateway:9091``."""
        return self._settings["url"]

    def get_conn(self) -> str:
        """The gateway's base URL (the Pushgateway has no client object; each push is one HTTP request)."""
        return self.url

    def _handler(self) -> Any:
        from prometheus_client.exposition import basic_auth_handler, default_handler

        login, password = self._settings["login"], self._settings["password"]
        if login is None and password is None:
            return default_handler

        def handler(url: str, method: str, timeout: float | None, headers: list, data: bytes) -> Any:
            return basic_auth_handler(url, method, timeout, headers, data, login or "", password or "")

        return handler

    def push(self, job: str, samples: Iterable[MetricSample], grouping_key: dict[str, str]) -> int:
        """Replace what ``job`` pushed under ``grouping_key`` with ``samples`` (HTTP PUT).

        The gateway keeps one group per ``job`` and grouping key and adds their labels to every series; a push
        replaces the whole group, so a series absent from the latest push disappears (no stale figures).

        :param job: the ``job`` label, e.g. ``mlops_performance``.
        :param samples: the gauges; a sample carrying a grouping label must give it the grouping value.
        :param grouping_key: labels of the group, e.g. ``{"model": "churn"}``.
        :return: the number of samples pushed.
        :raises PushgatewayError: naming the sample that is not a valid metric, or the gateway's answer.
        """
        from mlops_ops.core.optional import import_optional

        prometheus_client = import_optional("prometheus_client", "monitoring")
        from prometheus_client.exposition import push_to_gateway

        samples = list(samples)
        if not job:
            raise PushgatewayError("a push needs a job name")
        if not samples:
            raise PushgatewayError(f"nothing to push for job {job!r}: no samples")
        for name in grouping_key:
            if not LABEL_NAME.match(name):
                raise PushgatewayError(f"grouping label {name!r} is not a valid Prometheus label name")
        registry = prometheus_client.CollectorRegistry()
        gauges: dict[str, tuple[Any, tuple[str, ...], str]] = {}
        for sample in samples:
            self._check(sample, grouping_key)
            label_names = tuple(sorted(sample.labels))
            if sample.name not in gauges:
                gauge = prometheus_client.Gauge(
                    sample.name, sample.documentation, label_names, registry=registry
                )
                gauges[sample.name] = (gauge, label_names, sample.documentation)
            gauge, expected, _ = gauges[sample.name]
            if label_names != expected:
                raise PushgatewayError(
                    f"samples of {sample.name} must share label names: {list(expected)} and {list(label_names)}"
                )
            (gauge.labels(**sample.labels) if label_names else gauge).set(float(sample.value))
        try:
            push_to_gateway(
                self.url,
                job=job,
                registry=registry,
                grouping_key=dict(grouping_key),
                timeout=self._settings["timeout"],
                handler=self._handler(),
            )
        except OSError as err:  # urllib's HTTPError and URLError are OSErrors
            raise PushgatewayError(
                f"pushgateway at {self.url} refused the push of job {job!r}: {err}"
            ) from err
        self.log.info("Pushed %d samples of job %s %s to %s", len(samples), job, grouping_key, self.url)
        return len(samples)

    @staticmethod
    def _check(sample: MetricSample, grouping_key: dict[str, str]) -> None:
        if not METRIC_NAME.match(sample.name or ""):
            raise PushgatewayError(f"{sample.name!r} is not a valid Prometheus metric name")
        if (
            sample.value is None
            or isinstance(sample.value, bool)
            or not isinstance(sample.value, int | float)
        ):
            raise PushgatewayError(
                f"sample {sample.name} {sample.labels} has no numeric value: {sample.value!r}"
            )
        if math.isnan(sample.value):
            # A NaN gauge is legal but reads as "no data" on every panel: the caller should leave it out.
            raise PushgatewayError(
                f"sample {sample.name} {sample.labels} is NaN; leave an undefined value out"
            )
        for name, value in sample.labels.items():
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise PushgatewayError(f"sample {sample.name}: {name!r} is not a valid Prometheus label name")
            if name in grouping_key and str(grouping_key[name]) != str(value):
                # The gateway would silently overwrite the sample's label with the group's.
                raise PushgatewayError(
                    f"sample {sample.name} has {name}={value!r} but is pushed in the group {name}="
                    f"{grouping_key[name]!r}"
                )

    def test_connection(self) -> tuple[bool, str]:
        """Check that the gateway answers its health endpoint (with the connection's credentials)."""
        import base64
        import urllib.request

        try:
            request = urllib.request.Request(f"{self.url}/-/healthy")
            login, password = self._settings["login"], self._settings["password"]
            if login is not None or password is not None:
                token = base64.b64encode(f"{login or ''}:{password or ''}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            # The URL's scheme is checked to be http or https when the connection is read (_settings).
            with urllib.request.urlopen(request, timeout=self._settings["timeout"]) as response:  # nosec B310
                status = response.status
        except (OSError, AirflowException) as err:
            return False, f"Pushgateway of connection {self.pushgateway_conn_id!r} is not reachable: {err}"
        return True, f"Pushgateway at {self.url} is healthy (HTTP {status})"
