"""The Great Expectations adapter: the expectations GX evaluates, and its results as outcomes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.optional import import_optional
from mlops_ops.core.validation.expectations import _referenced_columns
from mlops_ops.core.validation.report import MAX_EXAMPLE_CHARS, MAX_EXAMPLES, ExpectationOutcome

if TYPE_CHECKING:
    import pandas as pd


def _gx_module() -> Any:
    # GX reads these at import/context creation; respect a value the user set.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return import_optional("great_expectations", "validation")


def _to_gx_expectation(type_: str, kwargs: dict[str, Any], position: int, source: str) -> Any:
    """Build the GX expectation object, turning GX's errors into a DataError naming the suite."""
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    config = ExpectationConfiguration(type=type_, kwargs=dict(kwargs), meta={"mlops_position": position})
    try:
        return config.to_domain_obj()
    except ExpectationNotFoundError as err:
        raise DataError(f"{source}: unknown expectation type {type_!r} (expectation #{position})") from err
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        raise DataError(f"{source}: invalid kwargs for {type_} (expectation #{position}): {err}") from err


def _run_gx(
    frame: pd.DataFrame, name: str, items: list[tuple[int, dict[str, Any]]]
) -> list[ExpectationOutcome]:
    """Run the GX expectations in one ephemeral context, one batch, one validation."""
    import pandas as pd

    gx = _gx_module()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)  # examples report row numbers within the file
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("mlops_validation")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    expectations = [
        _to_gx_expectation(item["type"], item["kwargs"], position, f"suite {name!r}")
        for position, item in items
    ]
    gx_suite = gx.ExpectationSuite(name=name, expectations=expectations)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    )
    by_position = {position: item for position, item in items}
    outcomes = []
    for expectation_result in result.results:
        position = expectation_result.expectation_config.meta["mlops_position"]
        outcomes.append(_gx_outcome(by_position[position], expectation_result))
    return outcomes


def _gx_outcome(item: dict[str, Any], expectation_result: Any) -> ExpectationOutcome:
    kwargs = item["kwargs"]
    columns = _referenced_columns(kwargs)
    column = ",".join(columns) if columns else None
    details = expectation_result.result or {}
    exception = _exception_message(expectation_result.exception_info)
    if exception is not None:
        observed: Any = {"exception": exception}
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = {
            "element_count": details.get("element_count"),
            "unexpected_count": details.get("unexpected_count"),
            "unexpected_percent": details.get("unexpected_percent"),
        }
    values = [_clip(value) for value in details.get("partial_unexpected_list") or []]
    rows = details.get("partial_unexpected_index_list") or []
    if len(rows) == len(values):
        examples = [{"row": row, "value": value} for row, value in zip(rows, values, strict=True)]
    else:
        examples = [{"value": value} for value in values]
    return ExpectationOutcome(
        expectation=item["type"],
        column=column,
        success=bool(expectation_result.success),
        observed=to_json_safe(observed),
        unexpected_examples=to_json_safe(examples[:MAX_EXAMPLES]),
        kwargs=dict(kwargs),
    )


def _clip(value: Any) -> Any:
    # A value can be megabytes long; a report names it, it does not carry it.
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_CHARS:
        return value[:MAX_EXAMPLE_CHARS] + "…"
    if isinstance(value, bytes) and len(value) > MAX_EXAMPLE_CHARS:
        return value[:MAX_EXAMPLE_CHARS] + b"..."
    return value


def _exception_message(info: Any) -> str | None:
    """GX's exception_info is either flat or keyed by metric id; return the first raised message."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None
