"""Access to ``s3://`` data from an Airflow AWS connection, through the Amazon provider's S3Hook.

The S3Hook's boto3 client resolves credentials, region and endpoint the way every AWS tool does (the
connection, then ``AWS_ENDPOINT_URL``/``AWS_REGION`` in the environment, then config files), and pyarrow and
deltalake, which read none of that, are handed what it resolved.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlops_ops.core.optional import import_optional
from mlops_ops.core.storage import is_s3


@dataclass(frozen=True)
class AwsAccess:
    """Credentials, region and (for S3-compatible stores) endpoint, as boto3 resolved them."""

    access_key: str | None
    secret_key: str | None
    session_token: str | None
    region: str | None
    endpoint_url: str | None


def aws_access(aws_conn_id: str | None) -> AwsAccess:
    """What the S3Hook of ``aws_conn_id`` would use; ``endpoint_url`` is ``None`` for AWS itself."""
    s3 = import_optional("airflow.providers.amazon.aws.hooks.s3", "aws")
    hook = s3.S3Hook(aws_conn_id=aws_conn_id)
    client = hook.get_conn()
    credentials = hook.get_credentials()
    endpoint = client.meta.endpoint_url
    return AwsAccess(
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
        region=client.meta.region_name or hook.conn_region_name,
        endpoint_url=None if not endpoint or "amazonaws.com" in endpoint else endpoint,
    )


def s3_options_for(uris: str | list[str], aws_conn_id: str | None) -> dict[str, Any] | None:
    """``pyarrow.fs.S3FileSystem`` keyword arguments from ``aws_conn_id`` when any of ``uris`` is on S3.

    Local paths need no connection, so this returns ``None`` for them without touching Airflow.

    :param uris: one URI or several.
    :param aws_conn_id: the Airflow AWS connection.
    :return: the options, or ``None`` for local paths.
    """
    uris = [uris] if isinstance(uris, str) else uris
    if not any(is_s3(uri) for uri in uris):
        return None
    access = aws_access(aws_conn_id)
    options: dict[str, Any] = {
        "access_key": access.access_key,
        "secret_key": access.secret_key,
        "session_token": access.session_token,
    }
    if access.region:
        options["region"] = access.region
    if access.endpoint_url:
        # pyarrow wants host:port and the scheme apart.
        parsed = urlsplit(access.endpoint_url)
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme
    return options


def s3_endpoint(s3_options: dict[str, Any]) -> str:
    """The endpoint that ``pyarrow.fs.S3FileSystem`` options talk to, for messages: the S3-compatible store's
    URL, else AWS's regional endpoint."""
    if s3_options.get("endpoint_override"):
        return f"{s3_options.get('scheme') or 'https'}://{s3_options['endpoint_override']}"
    region = s3_options.get("region")
    return f"https://s3.{region}.amazonaws.com" if region else "https://s3.amazonaws.com"


def s3_unreachable_as(s3_options: dict[str, Any] | None, action: str) -> AbstractContextManager[None]:
    """A block whose failures to reach S3 are re-raised as one
    :class:`~mlops_ops.core.services.ServiceUnavailable` naming the endpoint and ``action``; nothing changes
    for local paths (``s3_options`` ``None``).

    :param s3_options: what :func:`s3_options_for` returned.
    :param action: what the block does, e.g. ``"publishing the predictions of [...)"``.
    """
    if s3_options is None:
        return nullcontext()
    from mlops_ops.core.services import unreachable_as

    return unreachable_as("S3 endpoint", s3_endpoint(s3_options), action)


def delta_storage_options(table_uri: str, aws_conn_id: str | None) -> dict[str, str] | None:
    """``deltalake`` storage options for an ``s3://`` table, from the Airflow AWS connection."""
    if not table_uri.startswith(("s3://", "s3a://")) or not aws_conn_id:
        return None
    access = aws_access(aws_conn_id)
    options = {"AWS_ACCESS_KEY_ID": access.access_key or "", "AWS_SECRET_ACCESS_KEY": access.secret_key or ""}
    if access.session_token:
        options["AWS_SESSION_TOKEN"] = access.session_token
    if access.region:
        options["AWS_REGION"] = access.region
    if access.endpoint_url:
        options["AWS_ENDPOINT_URL"] = access.endpoint_url
        if access.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options
