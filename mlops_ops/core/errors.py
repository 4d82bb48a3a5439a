"""The exceptions of mlops-ops: one root and four kinds, raised by the pure core and extended by the operators.

Every exception mlops-ops raises derives from :class:`MlopsError`, so ``except MlopsError`` catches what this
library refuses and nothing else. Four kinds say what a caller can do about it:

- :class:`DataError`: the input data is refused (missing, unreadable, wrong shape or type); fix the data.
- :class:`RefusedByPolicy`: a rule refused the action (a gate, the trust rules, a promotion rule); retrying
  changes nothing, a person decides.
- :class:`~mlops_ops.core.services.ServiceUnavailable`: a service did not answer; retrying later may succeed.
- :class:`~mlops_ops.core.optional.MissingExtraError`: an optional integration is not installed.

Other errors derive from the root directly (a bad setting, a backup that cannot be restored...). Operators raise
subclasses that are also Airflow's ``AirflowFailException`` (not retried), e.g. ``PromotionRefused`` is a
:class:`RefusedByPolicy`. Each also keeps the built-in base it always had (``ValueError``, ``RuntimeError``...), so
code that caught those goes on working.
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")


class MlopsError(Exception):
    """Root of every exception raised by mlops-ops."""


class DataError(MlopsError, ValueError):
    """Input data is unusable (missing, unreadable, wrong shape); retrying will not help."""


class RefusedByPolicy(MlopsError):
    """A rule of the deployment or of the model's lifecycle refused the action (a gate, a trust rule, a
    promotion rule); retrying will not help."""


class ModelIntegrityError(RefusedByPolicy, RuntimeError):
    """A model version is refused by the deployment's trust rules (unsigned, modified, unsafe to load, or a
    format the deployment does not allow); retrying will not help."""


def required(value: _T | None, what: str) -> _T:
    """``value``, which the caller's own logic has set; :class:`MlopsError` naming ``what`` when it is ``None``
    (a broken invariant, reported as such: unlike ``assert``, the check stays under ``python -O``)."""
    if value is None:
        raise MlopsError(f"internal error: {what} is missing")
    return value
