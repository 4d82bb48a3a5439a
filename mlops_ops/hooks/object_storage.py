"""Object storage reached through an Airflow connection: ``s3://`` through the Amazon provider's S3Hook and an
``aws`` connection, ``abfs://`` through a ``wasb`` (Azure Blob Storage) connection, ``gs://`` through a
``google_cloud_platform`` connection.

What the connection resolves becomes one :class:`~mlops_ops.core.storage.ObjectStore` (a pyarrow filesystem's
arguments) that core code reads and writes through; pyarrow and deltalake read no Airflow connection themselves.
For S3 the S3Hook's boto3 client resolves credentials, region and endpoint the way every AWS tool does (the
connection, then ``AWS_ENDPOINT_URL``/``AWS_REGION`` in the environment, then config files).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlops_ops.core.optional import import_optional
from mlops_ops.core.printable import printable
from mlops_ops.core.storage import ObjectStore, scheme_of

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: The connection types that configure each store (the Amazon, Azure and Google providers' own types, so a
#: deployment's existing connections work; the Azure and Google providers need not be installed).
CONNECTION_TYPES: dict[str, frozenset[str]] = {
    "s3": frozenset({"aws"}),
    "abfs": frozenset({"wasb", "adls"}),
    "gs": frozenset({"google_cloud_platform"}),
}


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


def object_store_for(uris: str | Iterable[str], conn_id: str | None) -> ObjectStore | None:
    """How to reach the object store that ``uris`` name, configured by the Airflow connection ``conn_id``.

    Local paths need no connection, so this returns ``None`` for them without touching Airflow.

    - ``s3://bucket/key``: an ``aws`` connection, read by the Amazon provider's S3Hook (a missing connection
      falls back to boto3's credential chain, as the S3Hook does).
    - ``abfs://container/path``: a ``wasb`` connection. The storage account is the extra ``account_name`` or the
      login; the password is the account key, or the extra ``sas_token`` a SAS, or the extras ``tenant_id``,
      ``client_id`` and ``client_secret`` a service principal; with none of them Azure's default credential
      (managed or workload identity) is used. The host, when set, is the Blob endpoint
      (``http://127.0.0.1:10000`` for Azurite).
    - ``gs://bucket/key``: a ``google_cloud_platform`` connection, or none: Application Default Credentials
      (workload identity, or ``GOOGLE_APPLICATION_CREDENTIALS`` on the worker). The extra ``project`` names the
      project; the host, when set, is the endpoint of an emulator, reached anonymously.

    :param uris: one URI or several; all that are not local must be in the same kind of store.
    :param conn_id: the Airflow connection.
    :return: the store, or ``None`` when every URI is local.
    :raises ValueError: URIs in two kinds of store, a connection of the wrong type, or a connection that lacks
        what its store needs (the message names the connection and the missing field).
    """
    uris = [uris] if isinstance(uris, str) else list(uris)
    schemes = sorted({scheme for scheme in map(scheme_of, uris) if scheme is not None})
    if not schemes:
        return None
    if len(schemes) > 1:
        raise ValueError(
            "one storage connection configures one object store, but these URIs are in "
            + " and ".join(f"{scheme}://" for scheme in schemes)
        )
    scheme = schemes[0]
    connection = _connection(conn_id, scheme)
    if scheme == "s3":
        return _s3_store(conn_id)  # the S3Hook reads the connection itself, or boto3's chain without one
    if scheme == "abfs":
        return _azure_store(connection, conn_id)
    return _gcs_store(connection, conn_id)


def _s3_store(aws_conn_id: str | None) -> ObjectStore:
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
        endpoint = access.endpoint_url
    else:
        endpoint = (
            f"https://s3.{access.region}.amazonaws.com" if access.region else "https://s3.amazonaws.com"
        )
    return ObjectStore("s3", options, endpoint, remover=S3Remover(aws_conn_id))


@dataclass(frozen=True)
class S3Remover:
    """Deletes S3 objects with the S3Hook's client (``DeleteObjects``, up to 1,000 keys a request), which leaves
    no "directory marker" behind as pyarrow's deletes do (see :class:`~mlops_ops.core.storage.ObjectRemover`).

    :param aws_conn_id: the ``aws`` connection; ``None`` uses boto3's credential chain, as the S3Hook does.
    """

    aws_conn_id: str | None

    def _client(self) -> Any:
        s3 = import_optional("airflow.providers.amazon.aws.hooks.s3", "aws")
        return s3.S3Hook(aws_conn_id=self.aws_conn_id).get_conn()

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many. A key the store refuses to delete fails the
        call (``OSError``), naming how many were refused and the first one."""
        client = self._client()
        deleted = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            refused = response.get("Errors") or []
            if refused:
                raise OSError(
                    f"S3 refused to delete {len(refused)} of {len(keys)} objects under s3://{bucket}/{prefix}, "
                    f"first {printable(refused[0].get('Key', ''), 120)}: {refused[0].get('Code', 'unknown error')}"
                )
            deleted += len(keys)
        return deleted

    def delete_key(self, bucket: str, key: str) -> None:
        """Delete one object (S3 answers a missing key with success)."""
        self._client().delete_object(Bucket=bucket, Key=key)


def _connection(conn_id: str | None, scheme: str) -> Connection | None:
    """The connection ``conn_id`` (``None`` when there is none), checked to be of a type that configures
    ``scheme``."""
    if conn_id is None:
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    allowed = CONNECTION_TYPES[scheme]
    if connection.conn_type not in allowed:
        raise ValueError(
            f"connection {conn_id!r} is of type {connection.conn_type!r}; {scheme}:// URIs need a connection of "
            f"type {' or '.join(sorted(allowed))}"
        )
    return connection


def _endpoint(host: str | None) -> tuple[str, str] | None:
    """``(scheme, host:port)`` of a connection's host given as a URL (a bare ``host:port`` is taken as https)."""
    if not host:
        return None
    parsed = urlsplit(host if "://" in host else f"https://{host}")
    return parsed.scheme, parsed.netloc


def _azure_store(connection: Connection | None, conn_id: str | None) -> ObjectStore:
    if connection is None:
        raise ValueError(
            f"abfs:// URIs need an Airflow connection of type wasb naming the storage account; there is no "
            f"connection {conn_id!r}"
        )
    extra = connection.extra_dejson
    account = extra.get("account_name") or connection.login
    if not account:
        raise ValueError(
            f"connection {conn_id!r} names no storage account: set its login or extra account_name"
        )
    options: dict[str, Any] = {"account_name": account}
    key = connection.password or extra.get("shared_access_key")
    if key and extra.get("sas_token"):
        raise ValueError(f"connection {conn_id!r} sets both an account key and a sas_token: keep one")
    if key:
        options["account_key"] = key
    elif extra.get("sas_token"):
        options["sas_token"] = extra["sas_token"]
    for field_name in ("tenant_id", "client_id", "client_secret"):
        if extra.get(field_name):
            options[field_name] = extra[field_name]
    endpoint = _endpoint(connection.host)
    if endpoint is None:
        return ObjectStore("abfs", options, f"https://{account}.blob.core.windows.net")
    scheme, authority = endpoint
    options.update(
        blob_storage_authority=authority,
        blob_storage_scheme=scheme,
        dfs_storage_authority=authority,
        dfs_storage_scheme=scheme,
    )
    return ObjectStore("abfs", options, f"{scheme}://{authority}")


#: How long pyarrow's GCS client retries a failing request (its own default is 15 minutes, during which a task
#: whose credentials are missing appears to hang); a connection's extra ``retry_time_limit_seconds`` changes it.
GCS_RETRY_SECONDS = 60


def _gcs_store(connection: Connection | None, conn_id: str | None) -> ObjectStore:
    from datetime import timedelta

    public = "https://storage.googleapis.com"
    if connection is None:
        return ObjectStore("gs", {"retry_time_limit": timedelta(seconds=GCS_RETRY_SECONDS)}, public)
    extra = connection.extra_dejson
    if extra.get("key_path") or extra.get("keyfile_dict"):
        raise ValueError(
            f"connection {conn_id!r} holds a service account key, which pyarrow's GCS filesystem cannot take: "
            "give the workers Application Default Credentials instead (workload identity, or "
            "GOOGLE_APPLICATION_CREDENTIALS naming the key file) and remove key_path and keyfile_dict"
        )
    seconds = float(extra.get("retry_time_limit_seconds", GCS_RETRY_SECONDS))
    options: dict[str, Any] = {"retry_time_limit": timedelta(seconds=seconds)}
    if extra.get("project"):
        options["project_id"] = extra["project"]
    endpoint = _endpoint(connection.host)
    if endpoint is None:
        return ObjectStore("gs", options, public)
    scheme, authority = endpoint
    options.update(endpoint_override=authority, scheme=scheme, anonymous=True)
    return ObjectStore("gs", options, f"{scheme}://{authority}")


def store_unreachable_as(object_store: ObjectStore | None, action: str) -> AbstractContextManager[None]:
    """A block whose failures to reach the object store are re-raised as one
    :class:`~mlops_ops.core.services.ServiceUnavailable` naming the endpoint and ``action``; nothing changes
    for local paths (``object_store`` ``None``).

    :param object_store: what :func:`object_store_for` returned.
    :param action: what the block does, e.g. ``"publishing the predictions of [...)"``.
    """
    if object_store is None:
        return nullcontext()
    from mlops_ops.core.services import unreachable_as

    return unreachable_as(object_store.service, object_store.endpoint, action)


def delta_storage_options(table_uri: str, conn_id: str | None) -> dict[str, str] | None:
    """``deltalake`` storage options for a Delta table in an object store, from the Airflow connection.

    ``s3://`` through the ``aws`` connection, ``abfs://`` through the ``wasb`` one (the same fields as
    :func:`object_store_for`); ``gs://`` tables, and any table without a connection, are left to deltalake's own
    credential chain (Application Default Credentials on GCS). ``None`` for a local table.
    """
    if table_uri.startswith(("s3://", "s3a://")):
        return _delta_s3_options(conn_id) if conn_id else None
    if table_uri.startswith("abfs://"):
        return _delta_azure_options(object_store_for(table_uri, conn_id))
    return None


def _delta_s3_options(aws_conn_id: str) -> dict[str, str]:
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


def _delta_azure_options(object_store: ObjectStore | None) -> dict[str, str] | None:
    if object_store is None:
        return None
    given = object_store.options
    options = {key: str(given[key]) for key in _AZURE_DELTA_KEYS if given.get(key)}
    authority = given.get("blob_storage_authority")
    if authority:
        scheme = given.get("blob_storage_scheme", "https")
        host = authority.rsplit(":", 1)[0]
        # An emulator on an address (Azurite) names the account in the path; a custom domain in the host.
        path_style = host == "localhost" or host.replace(".", "").isdigit() or host.startswith("[")
        account = f"/{given['account_name']}" if path_style else ""
        options["azure_storage_endpoint"] = f"{scheme}://{authority}{account}"
        if scheme == "http":
            options["allow_http"] = "true"
    return options


#: The ``AzureFileSystem`` arguments that deltalake takes under the same names.
_AZURE_DELTA_KEYS = ("account_name", "account_key", "sas_token", "client_id", "client_secret", "tenant_id")
