"""The importable globals a model's pickle (or skops file) may name: an allow-list, so anything new is refused.

Derived from what legitimate models need (``tests/unit/core/test_pickle_allowlist.py`` fits and pickles a wide
range of scikit-learn estimators and checks that every global they name is allowed here):

- a few exact names: the reconstruction helpers of pickle, ``copyreg``, NumPy arrays and random generators, and
  plain builtin containers;
- by rule, after importing the named module (only under the packages below, never a test or build module):
  scikit-learn estimator classes (subclasses of ``BaseEstimator``: by scikit-learn's own contract their
  constructors only store their arguments) and the classes of scikit-learn's fitted state (trees, losses, links,
  binners); NumPy's scalar and dtype classes and its ufuncs (pure arithmetic); SciPy's sparse matrix classes.

A deployment adds its own estimators through its trust configuration (``allowed_globals``: exact
``module.name`` entries, or ``package.*`` to allow the estimator classes of a package such as ``xgboost``).
Functions are never allowed by rule: a function reachable from a pickle is a function the pickle can call.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

#: Exact ``module.name`` globals that legitimate model pickles use and that cannot be turned into a side effect.
SAFE_GLOBALS = frozenset(
    {
        # Plain containers and numbers (what protocol 2 writes for sets, bytes, complex...).
        "builtins.object",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "builtins.bool",
        "builtins.list",
        "builtins.dict",
        "builtins.tuple",
        "builtins.range",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "collections.deque",
        # The provider's own wrapper of other libraries' classifiers (mlops_ops.core.estimators).
        "mlops_ops.core.estimators.EncodedLabelClassifier",
        # How pickle rebuilds instances and protocol-2 bytes.
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",
        # Binds arguments to a callable that is itself judged here: no new capability.
        "functools.partial",
        # NumPy arrays, masked arrays, scalars and random generators.
        "numpy.ndarray",
        "numpy.dtype",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.core.numeric._frombuffer",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        # Cython's reconstructors: each makes an instance of the class it is given (itself judged here).
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.neighbors._ball_tree.newObj",
        "sklearn.metrics._dist_metrics.newObj",
        # Pure computations that fitted estimators keep as attributes (FeatureAgglomeration's pooling,
        # KMeans' inner loop, array namespaces).
        "numpy.mean",
        "numpy.median",
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        "sklearn.utils.validation.check_array",
        # SplineTransformer's splines.
        "scipy.interpolate._bsplines.BSpline",
    }
)
#: Modules (and their submodules) under which scikit-learn keeps the classes of fitted state that are not
#: estimators themselves.
SKLEARN_STATE_MODULES = (
    "sklearn._loss",
    "sklearn.tree._tree",
    "sklearn.tree._splitter",
    "sklearn.tree._criterion",
    "sklearn.ensemble._hist_gradient_boosting",
    "sklearn.neighbors._ball_tree",
    "sklearn.neighbors._kd_tree",
    "sklearn.neighbors._binary_tree",
    "sklearn.metrics._dist_metrics",
    "sklearn.utils._bunch",
    "sklearn.svm._libsvm",
    "sklearn.linear_model._sgd_fast",
    "sklearn.gaussian_process.kernels",
    "sklearn.neural_network._stochastic_optimizers",
    "sklearn.cluster._birch",
    "sklearn.cluster._bisect_k_means",
    "sklearn.calibration",
)
#: Module path parts never imported or allowed: test, build and bundled-vendor code.
DENIED_MODULE_PARTS = frozenset(
    {
        "testing",
        "_testing",
        "tests",
        "_test",
        "conftest",
        "externals",
        "f2py",
        "distutils",
        "_datasource",
        "_pytesttester",
    }
)
#: Packages whose classes may be allowed by rule, after their module is imported to look the name up.
RULE_PACKAGES = ("numpy", "sklearn", "scipy")


#: Python 2 names a protocol 0-2 pickle may use, mapped as the unpickler maps them (``fix_imports``).
def python2_name(module: str, name: str) -> tuple[str, str]:
    """``(module, name)`` as Python 3's unpickler imports a protocol 0-2 global (``__builtin__.eval`` ->
    ``builtins.eval``)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


@dataclass(frozen=True)
class GlobalsAllowList:
    """What a pickle stream may import.

    :param extra_globals: exact ``module.name`` entries a deployment adds (its own estimators).
    :param estimator_packages: packages (``xgboost``) whose scikit-learn estimator classes are allowed by rule.
    """

    extra_globals: frozenset[str] = frozenset()
    estimator_packages: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, entries: Iterable[str]) -> GlobalsAllowList:
        """From a deployment's ``allowed_globals``: ``module.name`` entries and ``package.*`` entries.

        :raises ValueError: for an entry that is neither, or that names a denied module.
        """
        exact, packages = set(), []
        for entry in entries:
            entry = str(entry).strip()
            if entry.endswith(".*"):
                package = entry[:-2]
                if not _is_dotted(package):
                    raise ValueError(f"allowed_globals entry {entry[:80]!r} is not 'package.*'")
                packages.append(package)
            elif _is_dotted(entry) and "." in entry:
                exact.add(entry)
            else:
                raise ValueError(f"allowed_globals entry {entry[:80]!r} is not 'module.name' or 'package.*'")
            if _denied_module(entry.rsplit(".", 1)[0]):
                raise ValueError(f"allowed_globals entry {entry[:80]!r} names a test or build module")
        return cls(extra_globals=frozenset(exact), estimator_packages=tuple(sorted(set(packages))))

    def refusal(self, module: str, name: str) -> str | None:
        """Why ``module.name`` may not be imported by a model's pickle, or ``None`` when it may."""
        qualified = f"{module}.{name}"
        if qualified in SAFE_GLOBALS or qualified in self.extra_globals:
            return None
        if "." in name or not name.isidentifier():
            return "an attribute path, not a module-level name"
        if _denied_module(module):
            return "in a test or build module"
        top = module.split(".", 1)[0]
        packages = RULE_PACKAGES + self.estimator_packages
        if not any(module == package or module.startswith(package + ".") for package in packages):
            return "not on the allow-list"
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return "not found in the installed libraries"
        except Exception as err:  # a module of an allowed package failing to import is refusal, not a crash
            return f"its module could not be imported ({type(err).__name__})"
        if _allowed_by_rule(top, module, value, self.estimator_packages):
            return None
        kind = "a class" if isinstance(value, type) else "a function or object"
        return f"{kind} that is not an estimator or model state class on the allow-list"


def _is_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _denied_module(module: str) -> bool:
    return any(part in DENIED_MODULE_PARTS or part.startswith("test_") for part in module.split("."))


def _allowed_by_rule(top: str, module: str, value: object, estimator_packages: tuple[str, ...]) -> bool:
    if top == "numpy":
        import numpy

        if isinstance(value, numpy.ufunc):
            return True
        return isinstance(value, type) and issubclass(value, numpy.generic | numpy.dtype)
    if top == "scipy":
        if not isinstance(value, type):
            return False
        from scipy.sparse import sparray, spmatrix

        return issubclass(value, spmatrix | sparray)
    if not isinstance(value, type):
        return False
    from sklearn.base import BaseEstimator

    if issubclass(value, BaseEstimator):
        return top == "sklearn" or any(module.startswith(p + ".") or module == p for p in estimator_packages)
    owner = getattr(value, "__module__", "") or ""
    return top == "sklearn" and any(
        owner == prefix or owner.startswith(prefix + ".") for prefix in SKLEARN_STATE_MODULES
    )
