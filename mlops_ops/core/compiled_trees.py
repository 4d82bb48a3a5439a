"""Exact, vectorized prediction of a few rows through the reference pipeline (ordinal encoder + gradient boosting).

scikit-learn predicts a ``HistGradientBoostingClassifier`` or ``HistGradientBoostingRegressor`` one tree at a
time: each tree is its own native call with its own argument checks and OpenMP set-up, and the pipeline first
turns the rows into a DataFrame and back. That is right for a batch of thousands of rows; for the one to a few
rows of a real-time request it is nearly all overhead (one row through the reference 300-tree pipeline: ~9 ms,
of which ~3 ms in the trees and the rest in the ColumnTransformer and input checks). :func:`compile_pipeline`
lays every tree's nodes into flat arrays once, when the model is loaded, and :class:`CompiledTrees` walks all
trees for all rows together in numpy, one step per tree level, under the same rules as scikit-learn's
``_predictor.pyx`` (a missing value takes the node's missing side, a categorical value tests the node's bitset,
a category unknown to the model counts as missing), then adds the leaf values in scikit-learn's order and applies
the model's own link function:

- a binary classifier (one tree per iteration): the logistic function of baseline + trees;
- a multiclass classifier (one tree per class per iteration): the softmax over the classes of each class's
  baseline + its trees;
- a regressor (one tree per iteration): the inverse link of its loss (identity for squared error, ``exp`` for
  Poisson or gamma) of baseline + trees.

Equality is checked, not assumed: :func:`compile_pipeline` predicts probe rows built from the model's own split
thresholds and categories (and missing and unknown values) both ways and refuses the model unless every
probability (classifiers) or predicted value (regressors) is bit-for-bit the same. Whatever it refuses (another
estimator, another scikit-learn whose internals moved), the caller keeps the model's own ``predict_proba`` or
``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import MlopsError, required
from mlops_ops.core.tasks import plain_value

if TYPE_CHECKING:
    import numpy as np

    from mlops_ops.core.tasks import Predictions, TaskType

#: Probe rows predicted both ways before a compiled model is used.
PROBE_ROWS = 512


class NotCompilable(MlopsError, ValueError):
    """The model is not one :func:`compile_pipeline` reproduces exactly; the message says why."""


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """A ``HistGradientBoostingClassifier`` (binary or multiclass) or ``HistGradientBoostingRegressor`` behind
    its ordinal encoder, as flat node arrays.

    :param input_names: the pipeline's input columns, in the model's signature order.
    :param category_codes: for each categorical input, category -> the code the trees test (missing and
        unknown categories are absent: they count as missing).
    :param classes: the classifier's ``classes_`` (as scikit-learn holds them), ``None`` for a regressor.
    :param task: what the model does by itself (:func:`mlops_ops.core.tasks.infer_task`): ``"binary"`` for
        classes 0 and 1, ``"multiclass"`` for other classes, ``"regression"``.

    The other fields are every tree's nodes concatenated, one array per node attribute, with child and bitset
    indices made global (a leaf's children are itself); trees are in scikit-learn's order, iteration by
    iteration and within one the tree of each class in class order; :func:`compile_pipeline` builds them.
    """

    input_names: tuple[str, ...]
    category_codes: Mapping[str, Mapping[Any, float]]
    classes: np.ndarray | None
    task: TaskType
    #: the input column of each feature the trees index, in the trees' order.
    tree_inputs: tuple[str, ...]
    roots: np.ndarray
    depth: int
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    is_categorical: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    bitset_row: np.ndarray
    left_bitsets: np.ndarray
    known_bitsets: np.ndarray
    known_row: np.ndarray
    #: one starting value per class (one for a binary classifier or a regressor).
    baseline: np.ndarray
    #: the estimator's loss: its link turns raw predictions into probabilities or values.
    loss: Any

    def features(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """The rows as the trees read them: shape (rows, features), categoricals encoded, float64."""
        import numpy as np

        encoded = []
        for name in self.tree_inputs:
            values = columns[name]
            codes = self.category_codes.get(name)
            if codes is None:
                encoded.append(np.asarray(values, dtype=np.float64))
            else:
                encoded.append(np.array([codes.get(value, np.nan) for value in values], dtype=np.float64))
        return np.column_stack(encoded) if encoded else np.empty((0, 0))

    def raw_predictions(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """The baseline plus the trees' leaf values, per row and class: shape (rows, trees per iteration).

        :param columns: one array per input column (text columns as strings with ``None`` for missing,
            the others as floats with NaN for missing), all of the same length.
        """
        import numpy as np

        rows = self.features(columns)
        count = rows.shape[0]
        outputs = self.baseline.size
        # Column-major like scikit-learn's own raw predictions: the softmax then reduces in the same order.
        raw = np.empty((count, outputs), dtype=np.float64, order="F")
        if count == 0:
            return raw
        trees = self.roots.size
        # One (row, tree) pair per element, walked level by level; a pair leaves the walk once it reaches a
        # leaf (whose children are itself), so a level costs what is still descending, not every pair.
        is_leaf = self.left == np.arange(self.left.size)
        node = np.tile(self.roots, count)  # pair i is row i // trees, tree i % trees
        active = np.flatnonzero(~is_leaf[node])
        for _ in range(self.depth):
            if active.size == 0:
                break
            current = node[active]
            feature = self.feature[current]
            data = rows[active // trees, feature]
            missing = np.isnan(data)
            go_left = data <= self.threshold[current]
            categorical = np.flatnonzero(self.is_categorical[current] & ~missing)
            if categorical.size:
                go_left[categorical] = self._categorical_left(
                    current[categorical], feature[categorical], data[categorical]
                )
            go_left = np.where(missing, self.missing_left[current], go_left)
            following = np.where(go_left, self.left[current], self.right[current])
            node[active] = following
            active = active[~is_leaf[following]]
        leaves = self.value[node.reshape(count, trees)]
        for output in range(outputs):
            # Class ``output``'s trees: one in every ``outputs``, iteration by iteration. scikit-learn starts from
            # the baseline and adds tree after tree; accumulate keeps that order (a plain sum adds pairwise and
            # may differ in the last bit).
            own = leaves if outputs == 1 else leaves[:, output::outputs]
            steps = np.column_stack([np.full(count, self.baseline[output]), own])
            raw[:, output] = np.add.accumulate(steps, axis=1)[:, -1]
        return raw

    def class_probabilities(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """A classifier's probability of each class per row: shape (rows, classes), columns in the order of
        :attr:`classes` (scikit-learn's ``predict_proba``).

        :raises TypeError: for a regressor.
        """
        if self.classes is None:
            raise TypeError("a regressor has no class probabilities")
        return self.loss.predict_proba(self.raw_predictions(columns))  # type: ignore[no-any-return]

    def predict_proba(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """A two-class classifier's probability of its second class (class 1) per row.

        :param columns: one array per input column (text columns as strings with ``None`` for missing,
            the others as floats with NaN for missing), all of the same length.
        :return: a float64 array, one probability per row.
        :raises TypeError: for a regressor or a classifier of more classes (see :meth:`class_probabilities`).
        """
        import numpy as np

        if self.classes is None or self.baseline.size != 1:
            raise TypeError("predict_proba gives one probability per row of a two-class model only")
        raw = self.raw_predictions(columns)[:, 0]
        return np.asarray(self.loss.link.inverse(raw), dtype=np.float64)

    def predict_values(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """A regressor's predicted value per row (scikit-learn's ``predict``).

        :raises TypeError: for a classifier.
        """
        import numpy as np

        if self.classes is not None:
            raise TypeError("a classifier predicts classes, not values")
        return np.asarray(self.loss.link.inverse(self.raw_predictions(columns).ravel()), dtype=np.float64)

    def predictions(
        self,
        columns: Mapping[str, Sequence[Any] | np.ndarray],
        task: TaskType | None = None,
        threshold: float = 0.5,
    ) -> Predictions:
        """The rows' predictions in the shape of ``task`` (default the model's own :attr:`task`), exactly as
        :meth:`mlops_ops.core.tasks.Task.predict` gives them from the model itself.

        :param threshold: probability of class 1 from which a binary prediction is 1.
        :raises TypeError: when ``task`` is not one this model can do (a class task of a regressor, or the
            reverse).
        """
        import numpy as np

        from mlops_ops.core.tasks import Predictions

        task = task or self.task
        if task == "regression":
            return Predictions("regression", self.predict_values(columns))
        probabilities = np.asarray(self.class_probabilities(columns), dtype=np.float64)
        classes = required(self.classes, "a classifier's classes")  # class_probabilities refused a regressor
        if task == "binary":
            positive = probabilities[:, 1]
            return Predictions("binary", (positive >= threshold).astype("int8"), positive, (0, 1))
        label = classes[probabilities.argmax(axis=1)]
        return Predictions("multiclass", label, probabilities, tuple(plain_value(value) for value in classes))

    def _categorical_left(self, node: np.ndarray, feature: np.ndarray, data: np.ndarray) -> np.ndarray:
        """``_predictor.pyx`` for categorical splits: in the left bitset -> left; known -> right; negative or
        unknown -> the missing side. Only meaningful where the node is categorical and the value present."""
        import numpy as np

        usable = ~np.isnan(data) & (data >= 0) & (data < 256)
        code = np.where(usable, data, 0).astype(np.intp)
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        in_left = (self.left_bitsets[self.bitset_row[node], word] >> bit) & 1
        known = (self.known_bitsets[self.known_row[feature], word] >> bit) & 1
        missing_side = self.missing_left[node]
        return np.where(usable & (in_left == 1), True, np.where(usable & (known == 1), False, missing_side))


def compile_pipeline(
    model: Any, input_names: Sequence[str], *, probe_rows: int = PROBE_ROWS
) -> CompiledTrees:
    """Compile a fitted ``Pipeline([ColumnTransformer(OrdinalEncoder on the categoricals, passthrough),
    HistGradientBoostingClassifier or HistGradientBoostingRegressor])`` (what ``build_estimator`` makes for any
    task) and check it against the model's own ``predict_proba`` (classifiers) or ``predict`` (regressors).

    :param model: the fitted pipeline, as loaded from MLflow.
    :param input_names: the model's input columns, in its signature's order.
    :param probe_rows: how many probe rows must predict bit-for-bit equal.
    :return: the compiled model.
    :raises NotCompilable: naming why the model is not reproduced exactly.
    """
    try:
        compiled = _compile(model, tuple(input_names))
    except NotCompilable:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as err:
        # The compiler reads fitted attributes scikit-learn keeps private; another release may move them.
        raise NotCompilable(f"this scikit-learn's fitted model is not laid out as expected: {err!r}") from err
    _check_equal(model, compiled, probe_rows)
    return compiled


def _compile(model: Any, input_names: tuple[str, ...]) -> CompiledTrees:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from mlops_ops.core.tasks import infer_task

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompilable(f"not a two-step scikit-learn pipeline: {type(model).__name__}")
    preprocessing, trees = model.steps[0][1], model.steps[1][1]
    if type(trees) is HistGradientBoostingClassifier:
        classes = np.asarray(trees.classes_)
        expected_trees = 1 if len(classes) == 2 else len(classes)
        if len(classes) < 2 or trees.n_trees_per_iteration_ != expected_trees:
            raise NotCompilable(
                f"a classifier of {len(classes)} classes with {trees.n_trees_per_iteration_} tree(s) per "
                "iteration"
            )
    elif type(trees) is HistGradientBoostingRegressor:
        classes = None
        if trees.n_trees_per_iteration_ != 1:
            raise NotCompilable(f"a regressor with {trees.n_trees_per_iteration_} trees per iteration")
    else:
        raise NotCompilable(
            f"the estimator is {type(trees).__name__}, not HistGradientBoostingClassifier or "
            "HistGradientBoostingRegressor"
        )
    if not isinstance(preprocessing, ColumnTransformer) or preprocessing.remainder != "passthrough":
        raise NotCompilable("the preprocessing is not a ColumnTransformer passing the other columns through")
    fitted = [
        (name, step, columns) for name, step, columns in preprocessing.transformers_ if name != "remainder"
    ]
    encoder_columns: list[str] = []
    encoder = None
    for _name, step, columns in fitted:
        if step == "drop" or not len(columns):
            continue
        if not isinstance(step, OrdinalEncoder) or encoder is not None:
            raise NotCompilable("the preprocessing does more than one ordinal encoding")
        encoder, encoder_columns = step, list(columns)
    if list(preprocessing.feature_names_in_) != list(input_names):
        raise NotCompilable("the pipeline's input columns are not the signature's")
    output_names = [str(name) for name in preprocessing.get_feature_names_out()]
    if sorted(output_names) != sorted(input_names):
        raise NotCompilable("the preprocessing renames or drops columns")

    # What the trees see of a category: the pipeline's encoder, then the estimator's own (it re-encodes
    # the categorical columns it was told about); anything else -> NaN, the missing side.
    inner = trees._preprocessor
    inner_codes: dict[int, dict[float, float]] = {}
    if inner is not None:
        inner_encoder = inner.named_transformers_["encoder"]
        inner_columns = np.flatnonzero(trees.is_categorical_)
        for position, categories in zip(inner_columns, inner_encoder.categories_, strict=True):
            inner_codes[int(position)] = {
                float(category): float(code)
                for code, category in enumerate(categories)
                if not (isinstance(category, float) and np.isnan(category))
            }
        order = list(inner.output_indices_)
        if order != ["encoder", "numerical", "remainder"][: len(order)] or not np.all(
            np.flatnonzero(trees.is_categorical_) == np.arange(int(trees.is_categorical_.sum()))
        ):
            raise NotCompilable("the estimator's own categorical columns are not the leading ones")
    category_codes: dict[str, dict[Any, float]] = {}
    if encoder is not None:
        if not (np.isnan(encoder.unknown_value) and np.isnan(encoder.encoded_missing_value)):
            raise NotCompilable("the encoder does not encode unknown and missing categories as NaN")
        for column, categories in zip(encoder_columns, encoder.categories_, strict=True):
            to_tree = inner_codes.get(output_names.index(column))
            codes: dict[Any, float] = {}
            for code, category in enumerate(categories):
                # NaN is the encoder's missing marker (-> NaN below by absence); ``None`` in an object column is
                # an ordinary category to OrdinalEncoder, with its own code.
                if isinstance(category, float) and np.isnan(category):
                    continue
                codes[category] = to_tree.get(float(code), np.nan) if to_tree is not None else float(code)
            category_codes[column] = codes

    # Iteration by iteration, and within one the tree of each class, as scikit-learn adds them.
    predictors = [predictor for iteration in trees._predictors for predictor in iteration]
    if not predictors:
        raise NotCompilable("the model has no trees")
    outputs = int(trees.n_trees_per_iteration_)
    if any(len(iteration) != outputs for iteration in trees._predictors):
        raise NotCompilable("an iteration does not hold one tree per class")
    offsets = np.cumsum([0] + [len(p.nodes) for p in predictors])
    bitset_offsets = np.cumsum([0] + [len(p.raw_left_cat_bitsets) for p in predictors])
    nodes = np.concatenate([p.nodes for p in predictors])
    tree_of_node = np.repeat(np.arange(len(predictors)), [len(p.nodes) for p in predictors])
    own = np.arange(len(nodes))
    is_leaf = nodes["is_leaf"].astype(bool)
    # A leaf points at itself, so walking every tree to the deepest tree's depth is harmless.
    left = np.where(is_leaf, own, nodes["left"].astype(np.intp) + offsets[tree_of_node])
    right = np.where(is_leaf, own, nodes["right"].astype(np.intp) + offsets[tree_of_node])
    left_bitsets = np.concatenate([p.raw_left_cat_bitsets for p in predictors]).astype(np.uint32)
    if not len(left_bitsets):
        left_bitsets = np.zeros((1, 8), dtype=np.uint32)
    known_bitsets, f_idx_map = trees._bin_mapper.make_known_categories_bitsets()
    if not len(known_bitsets):
        known_bitsets = np.zeros((1, 8), dtype=np.uint32)
    baseline = np.asarray(trees._baseline_prediction, dtype=np.float64).ravel()
    if baseline.size != outputs:
        raise NotCompilable(f"{baseline.size} baseline value(s) for {outputs} tree(s) per iteration")
    return CompiledTrees(
        input_names=input_names,
        category_codes=category_codes,
        classes=classes,
        task=infer_task(model).name,
        tree_inputs=tuple(output_names),
        roots=offsets[:-1].astype(np.intp),
        depth=int(max(p.get_max_depth() for p in predictors)),
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        is_categorical=nodes["is_categorical"].astype(bool) & ~is_leaf,
        left=left,
        right=right,
        value=nodes["value"].astype(np.float64),
        bitset_row=nodes["bitset_idx"].astype(np.intp) + bitset_offsets[tree_of_node],
        left_bitsets=np.ascontiguousarray(left_bitsets),
        known_bitsets=np.ascontiguousarray(known_bitsets.astype(np.uint32)),
        known_row=np.asarray(f_idx_map, dtype=np.intp),
        baseline=baseline,
        loss=trees._loss,
    )


def probe_columns(compiled: CompiledTrees, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows that reach every kind of branch: each numerical column drawn from the model's own thresholds, just
    above them, NaN and extremes; each categorical from its categories, an unknown one and ``None``."""
    import numpy as np

    random = np.random.default_rng(seed)
    split = compiled.left != np.arange(compiled.left.size)  # leaves point at themselves
    columns: dict[str, np.ndarray] = {}
    for position, name in enumerate(compiled.tree_inputs):
        codes = compiled.category_codes.get(name)
        if codes is not None:
            choices = np.array([*codes, "__unknown_category__", None], dtype=object)
            columns[name] = choices[random.integers(0, len(choices), rows)]
            continue
        thresholds = compiled.threshold[split & (compiled.feature == position) & ~compiled.is_categorical]
        candidates = np.concatenate(
            [thresholds, np.nextafter(thresholds, np.inf), [np.nan, -1e300, 1e300, 0.0]]
        )
        columns[name] = candidates[random.integers(0, len(candidates), rows)]
    return columns


def _check_equal(model: Any, compiled: CompiledTrees, rows: int) -> None:
    """Refuse ``compiled`` unless every probe row's probabilities (a classifier: all classes) or predicted value
    (a regressor) is bit-for-bit the model's own."""
    import numpy as np
    import pandas as pd

    columns = probe_columns(compiled, rows)
    frame = pd.DataFrame({name: columns[name] for name in compiled.input_names})
    if compiled.classes is None:
        expected = np.asarray(model.predict(frame), dtype=np.float64).reshape(rows, 1)
        actual = compiled.predict_values(columns).reshape(rows, 1)
        what = "predict"
    else:
        expected = np.asarray(model.predict_proba(frame), dtype=np.float64)
        actual = compiled.class_probabilities(columns)
        what = "predict_proba"
    if expected.shape != actual.shape:
        raise NotCompilable(f"scikit-learn's {what} has shape {expected.shape}, the compiled {actual.shape}")
    unequal = np.flatnonzero((expected != actual).any(axis=1))
    if unequal.size:
        first = int(unequal[0])
        shown_expected, shown_actual = expected[first], actual[first]
        if compiled.classes is None or compiled.baseline.size == 1:  # one number per row: quoted as before
            shown_expected, shown_actual = shown_expected[-1], shown_actual[-1]
        raise NotCompilable(
            f"{unequal.size} of {rows} probe rows predict differently (row {first}: scikit-learn "
            f"{shown_expected!r}, compiled {shown_actual!r})"
        )
