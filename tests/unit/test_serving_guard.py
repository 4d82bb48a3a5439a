"""The prediction API's boundary without services: bearer token, body limit, 422s that quote nothing, ranges from
the model spec, credentials masked in /health, /ready and logs. The API end to end is in
tests/integration/test_serving_api.py.

The application is built with :func:`create_app` and called without entering its lifespan, so no feature store
or registry is opened: no model is loaded, and a request that passes every check gets 503. The model served is
the synthetic visit model of tests/unit/synthetic.py (its request schema and spec).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlops_ops.core.errors import DataError
from mlops_ops.serving import (
    CONFIG_ENV,
    app_from_environment,
    checked_request_model,
    create_app,
)
from mlops_ops.serving_guard import (
    MAX_ERRORS,
    TOKEN_ENV,
    bounded_model,
    read_token,
    shown_error,
    token_matches,
    validation_error_body,
)
from tests.unit import synthetic
from tests.unit.synthetic import VisitRequest, serving_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "unit-test-token-0123456789abcdef"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
REQUEST = {
    "store": "north",
    "colour": "red",
    "voucher": "SPRING24",
    "visitor": 1545,
    "visit_time": "2024-02-01T05:15:00",
    "rooms": 3,
    "width": 12.5,
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    """The visit model's spec file (bounds: rooms 1 to 5, width at most 100)."""
    return str(synthetic.config_files(tmp_path_factory.mktemp("config"))["model-spec"])


def _client(spec: str, **settings) -> TestClient:
    """The API without its lifespan (nothing opened): a request that passes every check gets 503."""
    return TestClient(create_app(serving_config(model_spec=spec, **settings)))


# --- token --------------------------------------------------------------------------------------------------


def test_the_token_comes_from_the_file_then_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    assert read_token(str(token_file), environ={TOKEN_ENV: "another-token-0123456789"}) == TOKEN
    assert read_token(None, environ={TOKEN_ENV: TOKEN}) == TOKEN
    assert read_token(None, environ={TOKEN_ENV: ""}) is None
    assert read_token(None, environ={}) is None


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        (None, {}, "cannot read the token file"),
        ("\n", {}, "is empty"),
        ("short-secret", {}, "has 12 characters, fewer than 16"),
    ],
)
def test_an_unusable_token_file_is_refused_without_quoting_the_token(tmp_path, content, environ, message):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        read_token(str(token_file), environ=environ)
    assert "short-secret" not in str(raised.value)


def test_a_short_token_in_the_environment_is_refused():
    with pytest.raises(ValueError, match="fewer than 16"):
        read_token(None, environ={TOKEN_ENV: "abc"})


@pytest.mark.parametrize(
    ("authorization", "matches"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer  {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (TOKEN, False),
        (f"Basic {TOKEN}", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_token_matches_only_a_bearer_header_with_the_token(authorization, matches):
    assert token_matches(authorization, TOKEN) is matches


def test_predict_needs_the_token_and_health_ready_and_the_docs_do_not(spec):
    client = _client(spec, token=TOKEN)
    missing = client.post("/predict", json=REQUEST)
    assert missing.status_code == 401 and missing.json() == {"detail": "missing or invalid bearer token"}
    assert missing.headers["www-authenticate"] == 'Bearer realm="mlops-ops"'
    wrong = client.post("/predict", json=REQUEST, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert wrong.headers["www-authenticate"] == 'Bearer realm="mlops-ops", error="invalid_token"'
    assert client.post("/predict", json=REQUEST, headers=AUTHORIZED).status_code == 503  # past the guard
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503  # open, and not ready (no model in this test)
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
    assert client.get("/no-such-path").status_code == 401  # a path added later is guarded by default
    # The OpenAPI schema declares the scheme, so the interactive docs offer to send the token.
    assert client.get("/openapi.json").json()["paths"]["/predict"]["post"]["security"] == [{"HTTPBearer": []}]


def test_an_anonymous_caller_is_refused_before_its_body_is_read_or_validated(spec):
    client = _client(spec, token=TOKEN, max_body_bytes=1024)
    assert client.post("/predict", content=b"x" * 100_000).status_code == 401
    assert client.post("/predict", content="{not json").status_code == 401
    assert client.post("/predict", json=REQUEST | {"rooms": -1}).status_code == 401


def test_the_token_is_neither_in_the_configs_repr_nor_in_the_workers_config_json(monkeypatch, spec):
    import uvicorn

    from mlops_ops import serving

    assert TOKEN not in repr(serving_config(token=TOKEN))
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.update(kwargs))
    monkeypatch.setenv(CONFIG_ENV, "")
    monkeypatch.setenv(TOKEN_ENV, "")
    serving.serve(serving_config(model_spec=spec, token=TOKEN))
    assert TOKEN not in os.environ[CONFIG_ENV] and "token" not in json.loads(os.environ[CONFIG_ENV])
    assert os.environ[TOKEN_ENV] == TOKEN
    assert started["log_config"]["handlers"]["default"]["filters"] == ["scrub_secrets"]
    # A worker builds its application from both variables: the token is required there.
    worker = TestClient(app_from_environment())
    assert worker.post("/predict", json=REQUEST).status_code == 401
    assert worker.post("/predict", json=REQUEST, headers=AUTHORIZED).status_code == 503


# --- body limit ---------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413_whether_its_length_is_declared_or_not(spec):
    client = _client(spec, max_body_bytes=512)
    declared = client.post(
        "/predict", content=b"{" + b" " * 600 + b"}", headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and declared.json() == {"detail": "request body larger than 512 bytes"}

    def chunks():
        for _ in range(20):
            yield b" " * 100

    chunked = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    body = json.dumps(REQUEST)
    padded = body + " " * (512 - len(body))  # exactly the limit
    assert (
        client.post("/predict", content=padded, headers={"content-type": "application/json"}).status_code
        == 503
    )


def test_the_default_body_limit_is_64_kib(spec):
    client = _client(spec)
    assert client.post("/predict", json=REQUEST | {"voucher": "V" * 70_000}).status_code == 413
    assert (
        client.post("/predict", json=REQUEST | {"voucher": "V" * 60_000}).status_code == 422
    )  # max_length 10


# --- 422s ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["width", "rooms", "visitor"])
def test_nan_and_infinity_are_refused_naming_the_field(spec, field, literal):
    body = json.dumps(REQUEST).replace(f'"{field}": {REQUEST[field]}', f'"{field}": {literal}')
    assert literal in body
    response = _client(spec).post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"loc": ["body", field], "msg": "Input should be a finite number", "type": "finite_number"}
        ]
    }


def test_a_422_quotes_neither_values_nor_long_unknown_names(spec):
    secret = "hunter2" + "x" * 10_000
    response = _client(spec).post(
        "/predict", json=REQUEST | {"store": secret, "colour": secret, secret: 1, "price": 3}
    )
    assert response.status_code == 422
    assert "hunter2" not in response.text and len(response.content) < 1000
    assert response.json()["detail"] == [
        {
            "loc": ["body", "store"],
            "msg": "String should match pattern '^[a-z]+$'",
            "type": "string_pattern_mismatch",
        },
        {
            "loc": ["body", "colour"],
            "msg": "String should match pattern '^[a-z]{3,5}$'",
            "type": "string_pattern_mismatch",
        },
        {
            "loc": ["body", f"<name of {len(secret)} characters>"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        },
        {"loc": ["body", "price"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
    ]


def test_validation_error_bodies_drop_inputs_cut_messages_and_count_the_rest():
    errors = [
        {
            "type": "value_error",
            "loc": ("body", "x"),
            "msg": "Value error, bad 'hunter2-token'",
            "input": "hunter2-token",
        },
        {
            "type": "custom",
            "loc": ("body", 3),
            "msg": "m" * 500,
            "input": 1,
            "ctx": {"secret": "s"},
            "url": "u",
        },
        *[
            {"type": "missing", "loc": ("body", f"f{n}"), "msg": "Field required", "input": {}}
            for n in range(30)
        ],
    ]
    body = validation_error_body(errors)
    assert body["detail"][0] == {
        "loc": ["body", "x"],
        "msg": "invalid value (value_error)",
        "type": "value_error",
    }
    assert body["detail"][1]["loc"] == ["body", 3] and len(body["detail"][1]["msg"]) == 200
    assert len(body["detail"]) == MAX_ERRORS and body["more_errors"] == len(errors) - MAX_ERRORS
    assert "hunter2" not in json.dumps(body) and "secret" not in json.dumps(body)


# --- ranges from the spec -----------------------------------------------------------------------------------


def test_bounds_become_ranges_of_the_request_fields_they_name():
    model = bounded_model(VisitRequest, {"width": (100, 2000), "visitor": (0, None), "temp": (-50, 60)})
    assert issubclass(model, VisitRequest) and model.__name__ == "VisitRequest"
    schema = model.model_json_schema()["properties"]
    assert (schema["width"]["minimum"], schema["width"]["maximum"]) == (100, 2000)
    assert schema["visitor"]["minimum"] == 0 and "maximum" not in schema["visitor"]
    assert model(**(REQUEST | {"width": 150, "visitor": 10**9})).visitor == 10**9
    without_visitor = {k: v for k, v in REQUEST.items() if k != "visitor"} | {"width": 150}
    assert model(**without_visitor).visitor == 0  # the default kept
    with pytest.raises(ValueError, match="less than or equal to 2000"):
        model(**(REQUEST | {"width": 2000.5}))
    assert bounded_model(VisitRequest, {"temp": (0, 1)}) is VisitRequest  # no request field named


def test_the_api_takes_its_ranges_from_the_spec_it_is_given(tmp_path, spec):
    narrow_spec = tmp_path / "spec.yaml"
    narrow_spec.write_text(
        "name: m\ntarget: y\ncategorical_features: [store]\nnumerical_features: [width]\n"
        "bounds: {width: [1, 50], rooms: [0, 3]}\n"
    )
    narrow = TestClient(create_app(serving_config(model_spec=str(narrow_spec))))
    refused = narrow.post("/predict", json=REQUEST | {"width": 60, "rooms": 4})
    assert [(e["loc"][-1], e["type"]) for e in refused.json()["detail"]] == [
        ("rooms", "less_than_equal"),
        ("width", "less_than_equal"),
    ]
    assert (
        _client(spec).post("/predict", json=REQUEST | {"width": 60, "rooms": 4}).status_code == 503
    )  # <= 100, 5
    assert (
        _client(spec).post("/predict", json=REQUEST | {"width": 150}).status_code == 422
    )  # the visits spec: 100
    # Without a spec only types and finiteness are checked.
    unbounded = TestClient(create_app(serving_config(model_spec=None)))
    assert unbounded.post("/predict", json=REQUEST | {"width": 50_000}).status_code == 503
    infinite = json.dumps(REQUEST | {"width": float("inf")})  # Python writes it as Infinity
    response = unbounded.post("/predict", content=infinite, headers={"content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model_spec": "no/such/spec.yaml"}, "no/such/spec.yaml: cannot read the model spec"),
        ({"max_body_bytes": 0}, "max_body_bytes must be positive, got 0"),
        ({"token": "short"}, "has 5 characters, fewer than 16"),
    ],
)
def test_bad_request_settings_are_refused_before_serving(spec, settings, message):
    with pytest.raises(ValueError) as raised:
        checked_request_model(serving_config(**({"model_spec": spec} | settings)))
    assert message in str(raised.value)


def test_bounds_on_a_text_field_are_refused_naming_the_spec(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: m\ntarget: y\ncategorical_features: []\nnumerical_features: []\nbounds: {store: [0, 1]}\n"
    )
    with pytest.raises(
        DataError, match=r"spec.yaml: bounds.store: the request field 'store' is not a number"
    ):
        create_app(serving_config(model_spec=str(spec)))


# --- what /health, /ready and logs may say ------------------------------------------------------------------

LEAKY_ERROR = (
    "MlflowException: API request to http://alice:hunter2@mlflow:5000/api/2.0/mlflow/registered-models/alias "
    "failed with exception HTTPConnectionPool(host='mlflow', port=5000)"
)


def test_health_and_ready_mask_credentials_in_the_last_error(spec):
    app = create_app(serving_config(model_spec=spec))
    app.state.slot.last_error = LEAKY_ERROR
    client = TestClient(app)
    health, ready = client.get("/health"), client.get("/ready")
    assert health.json()["last_error"].startswith(
        "MlflowException: API request to http://***@mlflow:5000/api"
    )
    assert ready.json()["reason"] == health.json()["last_error"]
    assert "hunter2" not in health.text + ready.text and "alice" not in health.text + ready.text


def test_with_a_token_anonymous_health_checks_see_only_the_kind_of_error(spec):
    app = create_app(serving_config(model_spec=spec, token=TOKEN))
    app.state.slot.last_error = LEAKY_ERROR
    client = TestClient(app)
    assert client.get("/health").json()["last_error"] == "MlflowException"
    assert client.get("/ready").json()["reason"] == "MlflowException"
    assert "http://***@mlflow:5000" in client.get("/health", headers=AUTHORIZED).json()["last_error"]


def test_shown_errors_are_masked_before_they_are_cut():
    error = "Failure: " + "x" * 480 + " http://alice:hunter2secret@host/"
    shown = shown_error(error, detailed=True)
    assert len(shown) == 500 and "hunter" not in shown and "alice" not in shown
    assert shown_error(None, detailed=True) is None
    assert shown_error("no colon at all http://a:b@c", detailed=False) == "no colon at all http"


def test_the_servers_log_lines_are_masked_whoever_logs_them():
    """uvicorn's logging configuration from serve(): a library's warning, this API's reload error and a
    traceback all leave the handler masked (run in a fresh interpreter: it reconfigures logging)."""
    script = (
        "import logging, logging.config\n"
        "from mlops_ops.serving import _log_config\n"
        "logging.config.dictConfig(_log_config())\n"
        "logging.getLogger('mlflow.utils.rest_utils').warning('retrying http://alice:hunter2@mlflow:5000/api')\n"
        "logging.getLogger('mlops_ops.serving').info('serving %s from %s', 'm', 'redis://:hunter2@redis:6379')\n"
        "try:\n"
        "    raise ConnectionError('token=hunter2 refused')\n"
        "except ConnectionError:\n"
        "    logging.getLogger('uvicorn.error').exception('Exception in ASGI application')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    output = completed.stdout + completed.stderr
    assert "hunter2" not in output and "alice" not in output
    for masked in (
        "http://***@mlflow:5000/api",
        "serving m from redis://***@redis:6379",
        "token=*** refused",
    ):
        assert masked in output


# --- the command line ---------------------------------------------------------------------------------------


def test_serve_reads_the_token_file_and_passes_the_request_settings(tmp_path, monkeypatch, spec):
    from mlops_ops import cli, serving

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    served = {}
    monkeypatch.setattr(serving, "serve", lambda config, **kwargs: served.update(config=config))
    argv = ["serve", *synthetic.serve_arguments("elsewhere.yaml"), "--token-file", str(token_file)]
    assert cli.main([*argv, "--max-body-bytes", "2048", "--model-spec", spec]) == 0
    config = served["config"]
    assert (config.token, config.max_body_bytes, config.model_spec) == (TOKEN, 2048, spec)
    assert (config.model_name, config.request_schema) == ("shop_visit", "tests.unit.synthetic:VisitRequest")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token-file", "/no/such/token"], "cannot read the token file /no/such/token"),
        (["--model-spec", "/no/such/spec.yaml"], "/no/such/spec.yaml: cannot read the model spec"),
        (["--max-body-bytes", "0"], "max_body_bytes must be positive"),
        (
            ["--request-schema", "tests.unit.no_such_module:VisitRequest"],
            "request schema: cannot import module 'tests.unit.no_such_module'",
        ),
        (
            ["--request-schema", "tests.unit.synthetic:serve_arguments"],
            "'tests.unit.synthetic:serve_arguments' is not a subclass of mlops_ops.serving.PredictionRequest",
        ),
    ],
)
def test_serve_refuses_bad_settings_in_one_line_before_starting(argv, message, monkeypatch, capsys, spec):
    from mlops_ops import cli, serving

    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: pytest.fail("the server started"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert cli.main(["serve", *synthetic.serve_arguments(spec), *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_needs_the_model_and_its_request_schema(monkeypatch, capsys):
    """The wheel serves no model of its own: without --model and --request-schema, argparse's usage error."""
    from mlops_ops import cli, serving

    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: pytest.fail("the server started"))
    with pytest.raises(SystemExit) as usage:
        cli.main(["serve"])
    assert usage.value.code == 2
    assert "--model" in capsys.readouterr().err
