"""Turn monitoring evidence into a retrain request: an asset event that the retrain DAG is scheduled on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_ops.core.contracts import as_mapping

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context


class RequestRetrainOperator(BaseOperator):
    """Send one retrain request when monitoring asks for it, at most once per cool-down.

    ``evidence`` holds the results of the monitoring tasks (a drift check's XCom with ``retrain_requested`` and
    ``reason``; a performance check's with ``decay.retrain_requested`` and ``decay.reasons``). When any asks,
    and the previous event of ``request`` (read back as this task's inlet) is older than ``cooldown``, the task
    succeeds and updates ``request`` with the extras ``{"reason", "evidence", "model_name"}``: a DAG scheduled on
    that asset (``retrain``) starts and records the reason on the model it trains. Otherwise the task is skipped,
    so no event is sent; its XCom says why (nothing asked, or the cool-down and when it ends).

    :param model_name: the registered model the evidence is about.
    :param request: the retrain-request asset (:func:`mlops_ops.assets.retrain_request_asset`); added to the
        task's inlets and outlets.
    :param evidence: the monitoring results: a list of XCom values (dicts or their JSON). Templated.
    :param cooldown: the least time between two requests.
    :return: (XCom) ``{"requested", "send", "reason", "reasons", "suppressed_until", "previous_request_at"}``.
    """

    template_fields: Sequence[str] = ("evidence",)
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        model_name: str,
        request: Asset,
        evidence: Sequence[Any] | str,
        cooldown: timedelta = timedelta(days=3),
        **kwargs: Any,
    ) -> None:
        kwargs["inlets"] = [*(kwargs.get("inlets") or []), request]
        kwargs["outlets"] = [*(kwargs.get("outlets") or []), request]
        super().__init__(**kwargs)
        self.model_name = model_name
        self.request = request
        self.evidence = evidence
        self.cooldown = cooldown

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import UTC, datetime

        from mlops_ops.core import retrain_requests

        evidence = self._evidence()
        previous = list(context["inlet_events"][self.request].ascending(False).limit(1))
        previous_at = previous[0].timestamp if previous else None
        decision = retrain_requests.decide(
            evidence, previous_request_at=previous_at, now=datetime.now(UTC), cooldown=self.cooldown
        )
        result = decision.to_dict()
        if not decision.requested:
            self.log.info("No monitoring check asks for a retrain of %s", self.model_name)
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException("no retrain requested")
        if not decision.send:
            self.log.warning(
                "A retrain of %s is asked for (%s), but one was requested at %s: within the %s cool-down, no "
                "new request before %s",
                self.model_name,
                decision.reason,
                decision.previous_request_at,
                self.cooldown,
                decision.suppressed_until,
            )
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException(
                f"retrain requested within the cool-down (until {decision.suppressed_until})"
            )
        context["outlet_events"][self.request].extra = {
            retrain_requests.REASON: decision.reason,
            retrain_requests.EVIDENCE: [_evidence_summary(piece) for piece in evidence if piece],
            "model_name": self.model_name,
        }
        self.log.info("Retrain of %s requested: %s", self.model_name, decision.reason)
        return result

    def _evidence(self) -> list[dict[str, Any] | None]:
        pieces = self.evidence
        if isinstance(pieces, str):
            import json

            try:
                pieces = json.loads(pieces) if pieces.strip() else []
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"evidence must be a list of monitoring results, got {pieces[:200]!r}"
                ) from err
        if not isinstance(pieces, (list, tuple)):
            raise ValueError(f"evidence must be a list of monitoring results, got {type(pieces).__name__}")
        return [as_mapping(piece, "evidence item") if piece else None for piece in pieces]


def _evidence_summary(piece: dict[str, Any]) -> dict[str, Any]:
    """What of a monitoring result travels with the request: small, enough to find the full evidence."""
    keys = (
        "model_name",
        "model_version",
        "interval",
        "summary",
        "share",
        "drifted_columns",
        "new_categories",
        "report_uri",
        "result_uri",
        "metrics",
        "business_cost",
        "decay",
    )
    return {key: piece[key] for key in keys if key in piece}
