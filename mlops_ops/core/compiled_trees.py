"""Exact, vectorized prediction of a few rows through the reference pipeline (ordinal encoder + gradient boosting).

scikit-learn predicts a ``HistGradientBoostingClassifier`` one tree at a time: each tree is its own native call
with its own argument checks and OpenMP set-up, and the pipeline first turns the rows into a DataFrame and back.
That is right for a batch of thousands of rows; for the one to a few rows of a real-time request it is nearly
all overhead (one row through the reference 300-tree pipeline: ~9 ms, of which ~3 ms in the trees and the rest
in the ColumnTransformer and input checks). :func:`compile_pipeline` lays every tree's nodes into flat arrays
once, when the model is loaded, and :meth:`CompiledTrees.predict_proba` walks all trees for all rows together
in numpy, one step per tree level, under the same rules as scikit-learn's ``_predictor.pyx`` (a missing value
takes the node's missing side, a categorical value tests the node's bitset, a category unknown to the model
counts as missing), then adds the leaf values in scikit-learn's order and applies the model's own link function.

Equality is checked, not assumed: :func:`compile_pipeline` predicts probe rows built from the model's own split
thresholds and categories (and missing and unknown values) both ways and refuses the model unless every
probability is bit-for-bit the same. Whatever it refuses (another estimator, another scikit-learn whose
internals moved), the caller keeps the model's own ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import MlopsError

if TYPE_CHECKING:
    import numpy as np

#: Probe rows predicted both ways before a compiled model is used.
PROBE_ROWS = 512


class NotCompilable(MlopsError, ValueError):
    """The model is not one :func:`compile_pipeline` reproduces exactly; the message says why."""


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """A binary ``HistGradientBoostingClassifier`` behind its ordinal encoder, as flat node arrays.

    :param input_names: the pipeline's input columns, in the model's signature order.
    :param category_codes: for each categorical input, category -> the code the trees test (missing and
        unknown categories are absent: they count as missing).

    The other fields are every tree's nodes concatenated, one array per node attribute, with child and bitset
    indices made global (a leaf's children are itself); :func:`compile_pipeline` builds them.
    """

    input_names: tuple[str, ...]
    category_codes: Mapping[str, Mapping[Any, float]]
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
    baseline: float
    link: Any

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

    def predict_proba(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """The positive class's probability of each row.

        :param columns: one array per input column (text columns as strings with ``None`` for missing,
            the others as floats with NaN for missing), all of the same length.
        :return: a float64 array, one probability per row.
        """
        import numpy as np

        rows = self.features(columns)
        count = rows.shape[0]
        if count == 0:
            return np.empty(0, dtype=np.float64)
        row_index = np.arange(count)[:, None]
        node = np.broadcast_to(self.roots, (count, self.roots.size)).copy()
        for _ in range(self.depth):
            feature = self.feature[node]
            data = rows[row_index, feature]
            missing = np.isnan(data)
            missing_left = self.missing_left[node]
            go_left = data <= self.threshold[node]
            categorical = self.is_categorical[node] & ~missing
            if categorical.any():
                go_left = np.where(categorical, self._categorical_left(node, feature, data), go_left)
            go_left = np.where(missing, missing_left, go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node]
        # scikit-learn starts from the baseline and adds tree after tree; accumulate keeps that order (a plain
        # sum adds pairwise and may differ in the last bit).
        raw = np.add.accumulate(np.column_stack([np.full(count, self.baseline), leaves]), axis=1)[:, -1]
        return np.asarray(self.link.inverse(raw), dtype=np.float64)

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
    HistGradientBoostingClassifier])`` (what ``build_estimator`` makes) and check it against the model.

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
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompilable(f"not a two-step scikit-learn pipeline: {type(model).__name__}")
    preprocessing, trees = model.steps[0][1], model.steps[1][1]
    if type(trees) is not HistGradientBoostingClassifier:
        raise NotCompilable(f"the estimator is {type(trees).__name__}, not HistGradientBoostingClassifier")
    if trees.n_trees_per_iteration_ != 1 or len(trees.classes_) != 2:
        raise NotCompilable("not a binary classifier")
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

    predictors = [iteration[0] for iteration in trees._predictors]
    if not predictors:
        raise NotCompilable("the model has no trees")
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
    return CompiledTrees(
        input_names=input_names,
        category_codes=category_codes,
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
        baseline=float(baseline[0]),
        link=trees._loss.link,
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
    import numpy as np
    import pandas as pd

    columns = probe_columns(compiled, rows)
    frame = pd.DataFrame({name: columns[name] for name in compiled.input_names})
    expected = model.predict_proba(frame)[:, 1]
    actual = compiled.predict_proba(columns)
    unequal = np.flatnonzero(expected != actual)
    if unequal.size:
        first = int(unequal[0])
        raise NotCompilable(
            f"{unequal.size} of {rows} probe rows predict differently (row {first}: scikit-learn "
            f"{expected[first]!r}, compiled {actual[first]!r})"
        )
