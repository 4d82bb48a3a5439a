"""The allow-list is derived from what legitimate models need: every scikit-learn estimator that fits with its
defaults, pickled (protocols 2 and 5) and cloudpickled, names only allowed globals."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from mlops_ops.core.artifact_scan import _Scan
from mlops_ops.core.pickle_allowlist import GlobalsAllowList


def fitted_estimators():
    from sklearn.utils import all_estimators

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    targets = {"classifier": (features[:, 0] > 0).astype(int), "regressor": features[:, 1]}
    for kind in ("classifier", "regressor", "transformer", "cluster"):
        for name, estimator_class in all_estimators(type_filter=kind):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield name, estimator_class().fit(features, targets.get(kind))
            except Exception:  # noqa: S112 - estimators that need arguments to construct or fit are not models here
                continue


def test_every_default_scikit_learn_estimator_pickles_to_allowed_globals_only():
    import cloudpickle

    refused, fitted = {}, 0
    for name, estimator in fitted_estimators():
        fitted += 1
        for dumps in (pickle.dumps, cloudpickle.dumps):
            for protocol in (2, 5):
                scan = _Scan(GlobalsAllowList())
                scan.bytes_(dumps(estimator, protocol=protocol), name)
                refused.update({f"{name}: {finding.what}": True for finding in scan.findings})
    assert fitted > 100, "too few estimators fitted to derive anything from"
    assert not refused, sorted(refused)


@pytest.mark.parametrize(
    "module, name, words",
    [
        ("os", "system", "not on the allow-list"),
        ("subprocess", "Popen", "not on the allow-list"),
        ("builtins", "getattr", "not on the allow-list"),
        ("builtins", "type", "not on the allow-list"),
        ("numpy", "memmap", "a class that is not an estimator"),
        ("numpy", "fromfile", "a function or object"),
        ("numpy", "load", "a function or object"),
        ("sklearn.utils._testing", "TempMemmap", "in a test or build module"),
        ("sklearn.utils", "Bunch.__init__", "an attribute path"),
        ("sklearn.base", "does_not_exist", "not found"),
        ("scipy.io", "loadmat", "a function or object"),
    ],
)
def test_dangerous_or_unknown_globals_are_refused_with_the_reason(module, name, words):
    assert words in (GlobalsAllowList().refusal(module, name) or "allowed")


@pytest.mark.parametrize(
    "module, name",
    [
        ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting", "HistGradientBoostingClassifier"),
        ("sklearn.pipeline", "Pipeline"),
        ("numpy", "float64"),
        ("numpy", "log1p"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("scipy.sparse._csr", "csr_matrix"),
    ],
)
def test_what_models_are_made_of_is_allowed(module, name):
    assert GlobalsAllowList().refusal(module, name) is None
