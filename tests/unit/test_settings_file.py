"""Parsing, validation and ${...} expansion of airflow_settings.yaml; no Airflow database involved."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mlops_ops.cli import main
from mlops_ops.settings_file import (
    AirflowSettings,
    ConnectionSpec,
    KindReport,
    PoolSpec,
    SettingsError,
    VariableSpec,
    expand_references,
    load_settings_file,
    parse_settings,
)

REPO_SETTINGS = Path(__file__).resolve().parents[2] / "airflow_settings.yaml"

FULL = """
deployments: ignored            # unknown top-level keys are tolerated
airflow:
  dag_bundles: ignored
  connections:
    - conn_id: warehouse
      conn_type: postgres
      conn_host: db.internal
      conn_schema: analytics
      conn_login: etl
      conn_password: ${WAREHOUSE_PASSWORD}
      conn_port: 5432
      conn_extra: {sslmode: require, options: {timeout: 5}}
      conn_description: The warehouse
  pools:
    - pool_name: gpu
      pool_slot: 2
      pool_description: GPU slots
  variables:
    - variable_name: model
      variable_value: flight_delay
    - variable_name: thresholds
      variable_value: {roc_auc: 0.65}
"""


def parse(text: str, source: str = "settings.yaml") -> AirflowSettings:
    return parse_settings(yaml.safe_load(textwrap.dedent(text)), source=source)


def test_parse_every_field_into_frozen_specs():
    settings = parse(FULL)

    assert settings.connections == (
        ConnectionSpec(
            conn_id="warehouse",
            conn_type="postgres",
            host="db.internal",
            schema="analytics",
            login="etl",
            password="${WAREHOUSE_PASSWORD}",
            port=5432,
            extra={"sslmode": "require", "options": {"timeout": 5}},
            description="The warehouse",
        ),
    )
    assert settings.pools == (PoolSpec(name="gpu", slots=2, description="GPU slots"),)
    assert settings.variables == (
        VariableSpec(key="model", value="flight_delay"),
        VariableSpec(key="thresholds", value={"roc_auc": 0.65}),
    )
    with pytest.raises(AttributeError):
        settings.pools[0].slots = 3  # type: ignore[misc]


def test_repr_hides_password_and_extra():
    text = repr(parse(FULL).connections[0])

    assert "WAREHOUSE_PASSWORD" not in text
    assert "sslmode" not in text


def test_repo_settings_file_parses_without_references():
    settings = load_settings_file(REPO_SETTINGS)

    by_id = {spec.conn_id: spec for spec in settings.connections}
    assert by_id["mlflow_default"].conn_type == "mlflow"
    assert by_id["mlflow_default"].host is None
    assert by_id["aws_default"].extra == {"region_name": "us-east-1"}
    assert settings.pools == (
        PoolSpec("gpu", 1, "GPU training slots: one training task per GPU"),
        PoolSpec("registry", 1, "Registry alias moves (promote, rollback): one at a time"),
    )
    assert settings.variables == (VariableSpec("mlops_promotion_policy", "manual"),)
    # The Astro CLI stores ${...} literally, so the shared file must not depend on expansion.
    assert settings.resolve({}) == settings


def test_load_defaults_to_airflow_settings_yaml_in_cwd(tmp_path, monkeypatch):
    (tmp_path / "airflow_settings.yaml").write_text(
        "airflow:\n  pools:\n    - {pool_name: p, pool_slot: 4}\n"
    )
    monkeypatch.chdir(tmp_path)

    settings = load_settings_file()

    assert settings.pools == (PoolSpec("p", 4),)
    assert settings.source == "airflow_settings.yaml"


@pytest.mark.parametrize(
    "extra",
    [
        "{registry_uri: http://mlflow:5000, retries: 3}",
        """'{"registry_uri": "http://mlflow:5000", "retries": 3}'""",
    ],
    ids=["mapping", "json-string"],
)
def test_conn_extra_as_mapping_or_json_string(extra):
    settings = parse(f"""
        airflow:
          connections:
            - conn_id: mlflow_default
              conn_type: mlflow
              conn_extra: {extra}
        """)

    assert settings.connections[0].extra == {"registry_uri": "http://mlflow:5000", "retries": 3}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("'{not json'", "not a valid JSON string"),
        ("'[1, 2]'", "must be a mapping"),
        ("[a]", "must be a mapping"),
    ],
)
def test_conn_extra_that_is_not_an_object_is_an_error(extra, message):
    with pytest.raises(
        SettingsError, match=rf"settings\.yaml: airflow\.connections\[0\]\.conn_extra: {message}"
    ):
        parse(f"airflow:\n  connections:\n    - {{conn_id: c, conn_type: http, conn_extra: {extra}}}\n")


@pytest.mark.parametrize(
    ("section", "entries", "location", "problem"),
    [
        (
            "connections",
            "[{conn_id: a, conn_type: http}, {conn_type: http}]",
            "connections[1].conn_id",
            "required",
        ),
        (
            "connections",
            "[{conn_id: a, conn_type: http}, {conn_id: b}]",
            "connections[1].conn_type",
            "required",
        ),
        (
            "connections",
            "[{conn_id: a, conn_type: http, conn_port: http}]",
            "connections[0].conn_port",
            "integer",
        ),
        (
            "connections",
            "[{conn_id: a, conn_type: http, conn_port: 70000}]",
            "connections[0].conn_port",
            "65535",
        ),
        ("connections", "[{conn_id: a, conn_type: http, conn_hots: x}]", "connections[0]", "unknown field"),
        (
            "connections",
            "[{conn_id: a, conn_type: http, conn_host: [x]}]",
            "connections[0].conn_host",
            "string",
        ),
        (
            "connections",
            "[{conn_id: a, conn_uri: 'http://h', conn_host: h}]",
            "connections[0].conn_uri",
            "combined",
        ),
        ("pools", "[{pool_name: a, pool_slot: 1}, {pool_slot: 2}]", "pools[1].pool_name", "required"),
        ("pools", "[{pool_name: a}]", "pools[0].pool_slot", "required"),
        ("pools", "[{pool_name: a, pool_slot: many}]", "pools[0].pool_slot", "integer"),
        ("pools", "[{pool_name: a, pool_slot: 1.5}]", "pools[0].pool_slot", "integer"),
        ("pools", "[{pool_name: a, pool_slot: true}]", "pools[0].pool_slot", "integer"),
        ("pools", "[{pool_name: a, pool_slot: -2}]", "pools[0].pool_slot", "integer >= -1"),
        (
            "variables",
            "[{variable_name: a, variable_value: 1}, {variable_value: 2}]",
            "variables[1].variable_name",
            "required",
        ),
        (
            "variables",
            "[{variable_name: a}, {variable_name: a}]",
            "variables[1].variable_name",
            "already defined",
        ),
        ("variables", "{variable_name: a}", "variables", "must be a list"),
        ("variables", "[just-a-string]", "variables[0]", "must be a mapping"),
    ],
)
def test_invalid_entry_is_an_error_naming_file_section_index_and_field(section, entries, location, problem):
    with pytest.raises(SettingsError) as raised:
        parse(f"airflow:\n  {section}: {entries}\n", source="conf/airflow_settings.yaml")

    message = str(raised.value)
    assert message.startswith(f"conf/airflow_settings.yaml: airflow.{location}")
    assert problem in message


def test_unlimited_pool_and_zero_slots_are_valid():
    settings = parse("airflow:\n  pools: [{pool_name: a, pool_slot: -1}, {pool_name: b, pool_slot: 0}]\n")

    assert [pool.slots for pool in settings.pools] == [-1, 0]


def test_astro_init_template_placeholders_are_skipped():
    # What `astro dev init` writes: one blank entry per section.
    settings = parse("""
        airflow:
          connections:
            - conn_id:
              conn_type:
              conn_host:
              conn_schema:
              conn_login:
              conn_password:
              conn_port:
              conn_extra:
                example_extra_field: example-value
          pools:
            - pool_name:
              pool_slot:
              pool_description:
          variables:
            - variable_name:
              variable_value:
        """)

    assert settings == AirflowSettings(source="settings.yaml")


@pytest.mark.parametrize("text", ["", "other: 1\n", "airflow:\n", "airflow:\n  connections:\n"])
def test_empty_documents_mean_no_settings(text):
    assert parse(text) == AirflowSettings(source="settings.yaml")


def test_root_that_is_not_a_mapping_is_an_error():
    with pytest.raises(SettingsError, match="settings.yaml: the file must be a mapping"):
        parse("- a\n- b\n")


def test_invalid_yaml_and_missing_file_name_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("airflow: [unclosed\n")

    with pytest.raises(SettingsError, match=rf"{broken}: not valid YAML"):
        load_settings_file(broken)
    with pytest.raises(SettingsError, match="missing.yaml: cannot read"):
        load_settings_file(tmp_path / "missing.yaml")


def test_conn_uri_alone_is_enough():
    settings = parse("airflow:\n  connections: [{conn_id: s3, conn_uri: 'aws://?region_name=eu-west-1'}]\n")

    assert settings.connections[0].uri == "aws://?region_name=eu-west-1"
    assert settings.connections[0].conn_type is None


# --- ${...} expansion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-http://h:5000/x}", {}, "http://h:5000/x"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("$${A} and $5", {}, "${A} and $5"),
        ("no references", {}, "no references"),
    ],
)
def test_expand_references(text, environ, expected):
    assert expand_references(text, environ, "here") == expected


def test_unset_variable_without_default_is_an_error_naming_it():
    with pytest.raises(SettingsError, match="here: environment variable TOKEN is not set"):
        expand_references("Bearer ${TOKEN}", {}, "here")


@pytest.mark.parametrize("text", ["${A", "${1A}", "${A-x}", "${}"])
def test_malformed_reference_is_an_error(text):
    with pytest.raises(SettingsError, match="malformed reference"):
        expand_references(text, {"A": "x"}, "here")


def test_resolve_expands_every_field_at_apply_time():
    settings = parse("""
        airflow:
          connections:
            - conn_id: warehouse
              conn_type: postgres
              conn_host: ${DB_HOST:-localhost}
              conn_login: ${DB_USER:-}
              conn_password: ${DB_PASSWORD}
              conn_port: ${DB_PORT:-5432}
              conn_extra: '{"token": "${API_TOKEN}", "nested": {"list": ["${DB_HOST:-localhost}"]}, "n": 1}'
          pools:
            - pool_name: gpu
              pool_slot: ${GPU_COUNT:-1}
              pool_description: ${POOL_DESCRIPTION:-}
          variables:
            - variable_name: data_root
              variable_value: ${DATA_ROOT:-/data}
            - variable_name: config
              variable_value: {root: "${DATA_ROOT:-/data}", retries: 2}
            - variable_name: empty
              variable_value:
        """)
    # Parsing leaves the references in place: the secret is only read when applying.
    assert settings.connections[0].password == "${DB_PASSWORD}"

    environ = {"DB_PASSWORD": 'p"w}', "API_TOKEN": "t0k", "GPU_COUNT": "4", "DATA_ROOT": "s3://bucket"}
    resolved = settings.resolve(environ)

    connection = resolved.connections[0]
    assert (connection.host, connection.login, connection.password, connection.port) == (
        "localhost",
        None,  # an optional reference that expands to nothing leaves the field empty
        'p"w}',
        5432,
    )
    assert connection.extra == {"token": "t0k", "nested": {"list": ["localhost"]}, "n": 1}
    assert resolved.pools == (PoolSpec("gpu", 4, None),)
    assert resolved.variables == (
        VariableSpec("data_root", "s3://bucket"),
        VariableSpec("config", '{"root": "s3://bucket", "retries": 2}'),
        VariableSpec("empty", ""),
    )


def test_resolve_error_names_file_entry_field_and_variable():
    settings = parse(
        """
        airflow:
          connections:
            - conn_id: mlflow_default
              conn_type: mlflow
              conn_password: ${MLFLOW_TOKEN}
        """,
        source="airflow_settings.yaml",
    )

    with pytest.raises(SettingsError) as raised:
        settings.resolve({})

    assert str(raised.value).startswith(
        "airflow_settings.yaml: airflow.connections[0].conn_password (mlflow_default): "
        "environment variable MLFLOW_TOKEN is not set"
    )


@pytest.mark.parametrize(("value", "message"), [("lots", "integer >= -1"), ("-5", "integer >= -1")])
def test_pool_slot_from_environment_is_checked_once_expanded(value, message):
    settings = parse("airflow:\n  pools: [{pool_name: gpu, pool_slot: '${GPU_COUNT}'}]\n")

    with pytest.raises(SettingsError, match=rf"airflow\.pools\[0\]\.pool_slot \(gpu\): must be an {message}"):
        settings.resolve({"GPU_COUNT": value})


def test_non_string_variable_values_are_stored_as_json():
    settings = parse("""
        airflow:
          variables:
            - {variable_name: n, variable_value: 3}
            - {variable_name: flag, variable_value: true}
            - {variable_name: items, variable_value: [a, 1]}
            - {variable_name: day, variable_value: 2024-01-31}
        """)

    assert [spec.value for spec in settings.resolve({}).variables] == ["3", "true", '["a", 1]', "2024-01-31"]


# --- report and CLI without a database ----------------------------------------------------------------------


def test_kind_report_summary():
    assert KindReport("connections", created=("mlflow_default",)).summary() == (
        "connections: 1 created, 0 updated, 0 unchanged (created: mlflow_default)"
    )
    report = KindReport(
        "pools", updated=("gpu",), unchanged=("default_pool",), changed_fields={"gpu": ("pool_slot",)}
    )
    assert (
        report.summary()
        == "pools: 0 created, 1 updated, 1 unchanged (updated: gpu [pool_slot]; unchanged: default_pool)"
    )
    assert KindReport("variables").summary() == "variables: 0 created, 0 updated, 0 unchanged"


def test_cli_reports_a_settings_error_with_exit_status_2(tmp_path, capsys):
    bad = tmp_path / "airflow_settings.yaml"
    bad.write_text("airflow:\n  pools:\n    - {pool_name: gpu, pool_slot: many}\n")

    assert main(["settings", "apply", str(bad)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {bad}: airflow.pools[0].pool_slot: must be an integer")


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2
    assert "settings" in capsys.readouterr().err


def test_cli_and_parsing_import_no_airflow():
    code = (
        "import sys, mlops_ops.cli, mlops_ops.settings_file;"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


# --- profiles ------------------------------------------------------------------------------------------------

PRODUCTION = REPO_SETTINGS.with_name("airflow_settings.production.yaml")


def test_profile_file_sits_beside_the_base_file():
    from mlops_ops.settings_file import profile_file

    assert profile_file("conf/airflow_settings.yaml", "production") == Path(
        "conf/airflow_settings.production.yaml"
    )
    with pytest.raises(SettingsError, match="letters, digits"):
        profile_file("airflow_settings.yaml", "../etc")


def test_a_profile_replaces_entries_of_the_same_name_whole_and_adds_new_ones():
    from mlops_ops.settings_file import merge_settings

    base = parse_settings(
        {
            "airflow": {
                "connections": [{"conn_id": "a", "conn_type": "http", "conn_host": "base"}],
                "pools": [
                    {"pool_name": "gpu", "pool_slot": 1, "pool_description": "GPU"},
                    {"pool_name": "p", "pool_slot": 2},
                ],
            }
        },
        source="base.yaml",
    )
    overlay = parse_settings(
        {
            "airflow": {
                "connections": [
                    {"conn_id": "b", "conn_type": "redis"},
                    {"conn_id": "a", "conn_type": "mlflow"},
                ],
                "pools": [{"pool_name": "gpu", "pool_slot": "${SLOTS:-1}"}],
            }
        },
        source="prod.yaml",
    )
    merged = merge_settings(base, overlay)
    assert [(c.conn_id, c.conn_type, c.host) for c in merged.connections] == [
        ("a", "mlflow", None),  # replaced whole, in the base's position: the base host is gone
        ("b", "redis", None),
    ]
    assert [(p.name, p.slots, p.description) for p in merged.pools] == [
        ("gpu", "${SLOTS:-1}", None),
        ("p", 2, None),
    ]
    assert merged.source == "base.yaml + prod.yaml"


def test_the_production_profile_takes_every_location_from_the_environment():
    from mlops_ops.settings_file import load_settings_with_profile

    settings = load_settings_with_profile(REPO_SETTINGS, "production")
    assert "${" not in REPO_SETTINGS.read_text().split("airflow:", 1)[1]
    with pytest.raises(SettingsError, match="MLFLOW_TRACKING_URI is not set"):
        settings.resolve({})
    required = {
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLOPS_SIGNING_KEY": "c2lnbmluZy1rZXktb2YtdGhlLXRlc3Q=",  # pragma: allowlist secret
        "MLOPS_ALIAS_LOG_URL": "postgresql+psycopg2://airflow@postgres/airflow",
    }
    # The trust connection has no default: a stack without a signing key or an alias log does not start.
    for name in ("MLOPS_SIGNING_KEY", "MLOPS_ALIAS_LOG_URL"):
        with pytest.raises(SettingsError, match=f"{name} is not set"):
            settings.resolve({key: value for key, value in required.items() if key != name})

    minimal = settings.resolve(required)
    connections = {c.conn_id: c for c in minimal.connections}
    assert set(connections) == {
        "mlflow_default",
        "aws_default",
        "mlops_postgres",
        "redis_default",
        "feast_default",
        "pushgateway",
        "mlops_trust_default",
        "mlops_streams",
    }
    streams = connections["mlops_streams"]
    assert (streams.conn_type, streams.host, streams.port, streams.extra) == (
        "mlops_redis",
        "redis",
        6379,
        {"db": "1"},  # expanded from the environment: text, read as a number by the hook
    )
    trust = connections["mlops_trust_default"]
    assert (trust.conn_type, trust.password) == ("mlops_trust", required["MLOPS_SIGNING_KEY"])
    # The optional lists are left out, not written as empty strings.
    assert trust.extra == {"alias_log": required["MLOPS_ALIAS_LOG_URL"]}
    assert connections["mlflow_default"].host == "http://mlflow:5000"
    assert connections["feast_default"].extra == {
        "project": "flights",
        "online_store": {"type": "redis", "connection_string": "redis:6379,db=0"},
    }
    pushgateway = connections["pushgateway"]
    assert (pushgateway.conn_type, pushgateway.host) == ("prometheus_pushgateway", "http://pushgateway:9091")
    assert (pushgateway.login, pushgateway.password) == (None, None)
    assert connections["mlflow_default"].extra == {"artifact_root": "mlflow-artifacts:/experiments"}
    assert (connections["mlflow_default"].login, connections["mlflow_default"].password) == (None, None)
    # No endpoint: boto3 would reject an empty one; AWS itself needs none.
    assert connections["aws_default"].extra == {"region_name": "us-east-1"}
    assert connections["mlops_postgres"].password is None
    assert {p.name: p.slots for p in minimal.pools} == {"gpu": 1, "registry": 1}

    full = settings.resolve(
        {
            **required,
            "MLOPS_VERIFICATION_KEYS": "a2V5LW9uZQ==, a2V5LXR3bw==",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5001",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "POSTGRES_PASSWORD": "pw",
            "MLOPS_POSTGRES_HOST": "127.0.0.1",
            "MLOPS_GPU_SLOTS": "4",
            "MLOPS_PUSHGATEWAY_URL": "https://gateway.example:443",
            "MLOPS_PUSHGATEWAY_USER": "mlops",
            "MLOPS_MLFLOW_USER": "mlops-airflow",
            "MLOPS_MLFLOW_PASSWORD": "service-account-password",  # pragma: allowlist secret
        }
    )
    connections = {c.conn_id: c for c in full.connections}
    # MLflow's basic-auth app: the service account goes into the connection, which the workers read.
    assert (connections["mlflow_default"].login, connections["mlflow_default"].password) == (
        "mlops-airflow",
        "service-account-password",  # pragma: allowlist secret
    )
    assert (connections["pushgateway"].host, connections["pushgateway"].login) == (
        "https://gateway.example:443",
        "mlops",
    )
    assert connections["aws_default"].extra == {
        "region_name": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9000",
    }
    assert (connections["mlops_postgres"].host, connections["mlops_postgres"].password) == ("127.0.0.1", "pw")
    assert {p.name: p.slots for p in full.pools}["gpu"] == 4
    assert connections["mlops_trust_default"].extra["verification_keys"] == "a2V5LW9uZQ==, a2V5LXR3bw=="


def test_an_unknown_profile_is_an_error_naming_its_file(tmp_path):
    from mlops_ops.settings_file import load_settings_with_profile

    base = tmp_path / "airflow_settings.yaml"
    base.write_text("airflow: {}\n")
    with pytest.raises(SettingsError, match="airflow_settings.staging.yaml"):
        load_settings_with_profile(base, "staging")


def test_an_optional_extra_key_that_expands_to_nothing_is_left_out_but_a_literal_empty_one_is_kept():
    settings = parse_settings(
        {
            "airflow": {
                "connections": [
                    {
                        "conn_id": "s3",
                        "conn_type": "aws",
                        "conn_extra": {"endpoint_url": "${EP:-}", "note": ""},
                    }
                ]
            }
        }
    )
    assert settings.resolve({}).connections[0].extra == {"note": ""}
    assert settings.resolve({"EP": "http://x"}).connections[0].extra == {
        "endpoint_url": "http://x",
        "note": "",
    }
