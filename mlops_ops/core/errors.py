"""Errors raised by the pure core; operators translate them into Airflow failures."""

from __future__ import annotations


class DataError(ValueError):
    """Input data is unusable (missing, unreadable, wrong shape); retrying will not help."""


class GateFailedError(RuntimeError):
    """A model did not pass its evaluation gate."""
