"""The retry policy the reference DAGs share (``default_args``); light to import at parse time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def retry_default_args(first_retry_delay: timedelta, owner: str = "mlops") -> dict[str, Any]:
    """``default_args`` retrying twice with exponential backoff, so a retry outwaits a short service outage
    (MLflow, S3, Redis): the waits are spread over ``[d, 2d)`` with ``d = first_retry_delay * 2^(try - 1)``,
    at most 10 minutes (Airflow 3.3 reads ``retry_exponential_backoff`` as the multiplier)."""
    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": first_retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    }
