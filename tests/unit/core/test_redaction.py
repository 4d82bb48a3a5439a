"""core.redaction: credentials quoted in messages and log lines are masked, everything else is kept."""

from __future__ import annotations

import logging

import pytest

from mlops_ops.core.redaction import SecretScrubbingFilter, scrub_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "MlflowException: API request to http://alice:hunter2@mlflow:5000/api/2.0/x failed",
            "MlflowException: API request to http://***@mlflow:5000/api/2.0/x failed",
        ),
        # A password with an unescaped "@" is masked whole, not up to its first "@".
        ("https://alice:p@ss@w0rd@host:8443/path", "https://***@host:8443/path"),
        ("redis://:hunter2@redis:6379/0", "redis://***@redis:6379/0"),
        ("postgresql+psycopg2://airflow:hunter2@db/airflow", "postgresql+psycopg2://***@db/airflow"),
        ("localhost:6379,password=hunter2,ssl=true", "localhost:6379,password=***,ssl=true"),
        (
            "403 Forbidden for url: https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA1&X-Amz-Signature=ab12&v=1",
            "403 Forbidden for url: https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&v=1",
        ),
        (
            "https://x.blob.core.windows.net/c?sv=2020&sig=abc%2Bdef",
            "https://x.blob.core.windows.net/c?sv=2020&sig=***",
        ),
        ("connect(password='two words', port=1)", "connect(password=***, port=1)"),
        ("Authorization: Bearer abcdefghijklmnop0123", "Authorization: Bearer ***"),
        ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "Authorization: Basic ***"),
    ],
)
def test_credentials_are_masked(text, expected):
    assert scrub_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://mlflow:5000/api/2.0/mlflow/registered-models/alias?name=flight_delay&alias=champion",
        "passenger=3 max_token=4 tokenizer=5 bypass=6",
        "Bearer authentication is required",
        "ModelIntegrityError: flight_delay version 3: sha256 mismatch",
        "user@example.com wrote to s3://bucket/key",
    ],
)
def test_text_without_credentials_is_kept(text):
    assert scrub_secrets(text) == text


def test_the_logging_filter_masks_the_message_its_arguments_and_the_traceback():
    record_args = ("flight_delay", "http://alice:hunter2@mlflow:5000")
    try:
        raise ConnectionError("cannot reach http://alice:hunter2@mlflow:5000/api")
    except ConnectionError:
        import sys

        record = logging.LogRecord(
            "mlops_ops.serving",
            logging.ERROR,
            __file__,
            1,
            "could not load %s from %s",
            record_args,
            sys.exc_info(),
        )
    assert SecretScrubbingFilter().filter(record) is True  # never drops a record
    formatted = logging.Formatter().format(record)
    assert "hunter2" not in formatted and "alice" not in formatted
    assert "could not load flight_delay from http://***@mlflow:5000" in formatted
    assert "ConnectionError: cannot reach http://***@mlflow:5000/api" in formatted


def test_the_logging_filter_leaves_a_clean_record_as_it_was():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "serving %s version %s", ("flight_delay", "3"), None
    )
    SecretScrubbingFilter().filter(record)
    assert record.args == ("flight_delay", "3") and record.getMessage() == "serving flight_delay version 3"
