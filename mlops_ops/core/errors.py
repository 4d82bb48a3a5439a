"""Errors raised by the pure core; operators translate them into Airflow failures."""

from __future__ import annotations


class DataError(ValueError):
    """Input data is unusable (missing, unreadable, wrong shape); retrying will not help."""
