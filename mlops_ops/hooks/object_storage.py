"""Credentials for ``s3://`` data taken from an Airflow AWS connection, through the Amazon provider."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mlops_ops.core.optional import import_optional
from mlops_ops.core.storage import is_s3


def s3_options_for(uris: str | list[str], aws_conn_id: str | None) -> dict[str, Any] | None:
    """``pyarrow.fs.S3FileSystem`` keyword arguments from ``aws_conn_id`` when any of ``uris`` is on S3.

    Local paths need no connection, so this returns ``None`` for them without touching Airflow.

    :param uris: one URI or several.
    :param aws_conn_id: the Airflow AWS connection (its extra may set ``endpoint_url`` and ``region_name``).
    :return: the options, or ``None`` for local paths.
    """
    uris = [uris] if isinstance(uris, str) else uris
    if not any(is_s3(uri) for uri in uris):
        return None
    s3 = import_optional("airflow.providers.amazon.aws.hooks.s3", "aws")
    hook = s3.S3Hook(aws_conn_id=aws_conn_id)
    credentials = hook.get_credentials()
    options: dict[str, Any] = {
        "access_key": credentials.access_key,
        "secret_key": credentials.secret_key,
        "session_token": credentials.token,
        "region": hook.conn_region_name or "us-east-1",
    }
    endpoint = hook.conn_config.get_service_endpoint_url("s3")
    if endpoint:
        # pyarrow wants host:port and the scheme apart.
        parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme
    return options
