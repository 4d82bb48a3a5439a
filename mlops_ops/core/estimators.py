"""Estimators the provider adds around a team's own, stored inside its logged models (and so trusted by name in
the loading allow-list, :data:`~mlops_ops.core.pickle_allowlist.SAFE_GLOBALS`)."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin, clone


class EncodedLabelClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier fitted on class indices ``0..k-1`` that answers in the classes it was given.

    Some libraries' scikit-learn wrappers (XGBoost's ``XGBClassifier``) accept only the labels ``0..k-1``; a team's
    classes are strings or other integers (``"barolo"``, ``3, 5, 7``). :func:`~mlops_ops.core.training.fit`
    wraps a multiclass estimator from outside scikit-learn in this class, so that ``classes_``, ``predict`` and the
    order of ``predict_proba``'s columns are the team's classes, as for a scikit-learn classifier.

    :param estimator: the unfitted classifier; it is cloned, fitted on the class indices and kept as
        ``estimator_``.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> EncodedLabelClassifier:
        """Fit ``estimator`` on the index of each row's class among the sorted classes of ``y``."""
        import numpy as np

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        return self

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, one column per class of :attr:`classes_`, in its order."""
        return self.estimator_.predict_proba(X)

    def predict(self, X: Any) -> Any:
        """The most probable class of each row, as given in training."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
