"""Errors raised by the pure core; operators translate them into Airflow failures."""

from __future__ import annotations


class DataError(ValueError):
    """Input data is unusable (missing, unreadable, wrong shape); retrying will not help."""


class ModelIntegrityError(RuntimeError):
    """A model version is refused by the deployment's trust rules (unsigned, modified, unsafe to load, or a
    format the deployment does not allow); retrying will not help."""
