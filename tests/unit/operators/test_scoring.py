"""Batch-scoring operators against a real local MLflow registry, on a model trained by TrainOperator from the
synthetic visits of tests/unit/synthetic.py."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import predictions_asset
from mlops_ops.core import scoring
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.scoring import (
    BatchScoreOperator,
    BatchScoringFailed,
    PinModelVersionOperator,
    PublishPredictionsOperator,
)
from tests.trust_support import record_alias
from tests.unit import synthetic
from tests.unit.operators.support import CONN_ID, make_ti, train_and_gate

MODEL = synthetic.MODEL
KEYS = list(synthetic.KEY)
# The shared ``root`` fixture holds 3,000 synthetic visits from the start of January and of February 2024.
INTERVAL = {"interval_start": "2024-01-01T12:00:00+00:00", "interval_end": "2024-01-02T00:00:00+00:00"}


@pytest.fixture(scope="module")
def champion(root, client) -> str:
    """Version 1 of shop_visit, trained and gated by the operators, with alias ``champion``."""
    training, decision = train_and_gate(root, "manual__scoring", synthetic.spec())
    registered = RegisterOperator(
        task_id="register", training=training, decision=decision, mlflow_conn_id=CONN_ID
    ).execute(context={"ti": make_ti("manual__scoring", "register")})
    client.set_registered_model_alias(MODEL, "champion", registered["version"])
    record_alias(MODEL, "champion", registered["version"])  # as PromoteOperator records it
    return registered["version"]


def context(run_id: str = "scheduled__2024-01-02", task_id: str = "score", map_index: int = -1):
    ti = make_ti(run_id, task_id, map_index=map_index)
    ti.dag_id = "batch_score"
    return {"ti": ti, "outlet_events": defaultdict(lambda: SimpleNamespace(extra=None))}


def score_operator(root: Path, **kwargs) -> BatchScoreOperator:
    arguments = {
        "task_id": "score",
        "model_name": MODEL,
        "source": str(root / "data"),
        "output_root": str(root / "predictions"),
        "model_spec": synthetic.spec(),
        "key_columns": KEYS,
        "time_column": synthetic.TIME_COLUMN,
        "chunk_rows": 100,
        "mlflow_conn_id": CONN_ID,
        **INTERVAL,
        **kwargs,
    }
    return BatchScoreOperator(**arguments)


def interval_rows(root: Path) -> int:
    import pandas as pd

    frame = pd.concat(pd.read_parquet(path) for path in sorted((root / "data").rglob("*.parquet")))
    times = frame[synthetic.TIME_COLUMN]
    return int(((times >= INTERVAL["interval_start"]) & (times < INTERVAL["interval_end"])).sum())


def pin(**kwargs) -> dict:
    return PinModelVersionOperator(
        task_id="pin_champion", model_name=MODEL, mlflow_conn_id=CONN_ID, **kwargs
    ).execute(context=context(task_id="pin_champion"))


def test_pin_records_the_champion_version_and_its_digest(champion, client):
    pinned = pin()
    assert json.loads(json.dumps(pinned)) == pinned
    assert pinned["version"] == champion and pinned["alias"] == "champion"
    assert (
        pinned["artifact_sha256"] == client.get_model_version(MODEL, champion).tags["mlops.artifact_sha256"]
    )
    with pytest.raises(AirflowFailException, match="has no 'nobody' alias; promote a model first"):
        pin(alias="nobody")


def test_scores_the_interval_and_publishes_it_with_the_champion_version(root, champion):
    result = score_operator(root).execute(context=context())
    assert json.loads(json.dumps(result)) == result
    assert result["status"] == "published" and result["model_version"] == champion
    assert result["rows"] == interval_rows(root) > 100
    assert result["scoring"]["chunks"] >= 2  # 100-row chunks
    table = pq.read_table(result["uri"]).to_pandas()
    assert len(table) == result["rows"] and not table.duplicated(KEYS).any()
    assert set(table["model_version"]) == {int(champion)}
    assert result["uri"] == scoring.partition_uri(
        str(root / "predictions"), MODEL, scoring.Interval.parse(*INTERVAL.values())
    )


def test_a_pinned_version_is_used_even_after_the_alias_moved(root, champion, client):
    pinned = pin()
    original = client.get_model_version(MODEL, champion)
    moved = client.create_model_version(
        MODEL, source=original.source, run_id=original.run_id, tags=original.tags
    )
    client.set_registered_model_alias(MODEL, "champion", moved.version)
    try:
        result = score_operator(root, model=json.dumps(pinned)).execute(context=context("manual__pinned"))
    finally:
        client.set_registered_model_alias(MODEL, "champion", champion)
    assert result["model_version"] == champion != moved.version
    assert set(pq.read_table(result["uri"]).column("model_version").to_pylist()) == {int(champion)}


def test_a_modified_artifact_is_refused_and_nothing_is_published(root, champion, client, tmp_path):
    import mlflow

    good = client.get_model_version(MODEL, champion)
    copy = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{champion}", dst_path=str(tmp_path)))
    model_file = next(p for p in copy.iterdir() if p.name.startswith("model.") and p.suffix != ".json")
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    tampered = client.create_model_version(MODEL, source=copy.as_uri(), run_id=good.run_id, tags=good.tags)
    unrecorded = client.create_model_version(
        MODEL, source=good.source, run_id=good.run_id, tags={"mlops.gate.passed": "true"}
    )
    output = tmp_path / "predictions"
    for version, words in (
        (tampered, rf"its signature was made for '{MODEL}' version 1 \(copied from another version\)"),
        (unrecorded, "it is not signed"),
    ):
        pinned = {
            "name": MODEL,
            "version": version.version,
            "source": version.source,
            "artifact_sha256": version.tags.get("mlops.artifact_sha256", ""),
            "signature": version.tags.get("mlops.signature", ""),
        }
        with pytest.raises(BatchScoringFailed, match=words):
            score_operator(root, model=pinned, output_root=str(output)).execute(context=context())
    assert not output.exists()


def test_mapped_shards_then_publish_emit_the_predictions_asset(root, champion):
    pinned = pin()
    output = str(root / "sharded")
    shards = [
        score_operator(root, model=pinned, output_root=output, shard_count=2, shard_index=index).execute(
            context=context("manual__sharded", map_index=index)
        )
        for index in range(2)
    ]
    assert [shard["shard_index"] for shard in shards] == [0, 1]
    asset = predictions_asset(MODEL)
    ctx = context("manual__sharded", task_id="publish")
    published = PublishPredictionsOperator(
        task_id="publish",
        model_name=MODEL,
        model=pinned,
        output_root=output,
        shard_count=2,
        outlets=[asset],
        mlflow_conn_id=CONN_ID,
        **INTERVAL,
    ).execute(context=ctx)
    assert published["rows"] == sum(shard["rows"] for shard in shards) == interval_rows(root)
    assert ctx["outlet_events"][asset].extra == {
        "model_name": MODEL,
        "model_version": champion,
        "interval": published["interval"],
        "rows": published["rows"],
        "uri": published["uri"],
        "task": "binary",
        "classes": None,
    }
    assert (published["task"], published["classes"]) == ("binary", None)


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"interval_start": "2024-01-02", "interval_end": "2024-01-01"}, BatchScoringFailed, "is not after"),
        ({"shard_index": 2, "shard_count": 2}, AirflowFailException, "shard_index 2 is outside 0..1"),
        ({"shard_count": 0}, AirflowFailException, "shard_count must be >= 1"),
        ({"model": {"name": "other", "version": "1"}}, AirflowFailException, "pinned model is 'other'"),
        ({"model": "not a mapping"}, AirflowFailException, "model is neither a mapping nor JSON"),
        ({"source": "/nowhere/at/all"}, BatchScoringFailed, "scoring input /nowhere/at/all does not exist"),
    ],
)
def test_invalid_arguments_fail_clearly(root, champion, overrides, error, words):
    with pytest.raises(error, match=words):
        score_operator(root, **overrides).execute(context=context())


def test_a_spec_of_another_task_than_the_model_fails_naming_both_and_publishes_nothing(root, champion):
    output = root / "mismatched"
    spec = {
        **synthetic.spec(),
        "task": "regression",
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
    }
    with pytest.raises(
        BatchScoringFailed, match="declares task 'regression' but the model does task 'binary'"
    ):
        score_operator(root, model=pin(), model_spec=spec, output_root=str(output)).execute(context=context())
    assert not (output / f"model={MODEL}").exists()


def test_publish_without_the_pinned_model_is_refused(root):
    with pytest.raises(AirflowFailException, match="needs the pinned model"):
        PublishPredictionsOperator(
            task_id="publish", model_name=MODEL, shard_count=2, mlflow_conn_id=CONN_ID, **INTERVAL
        ).execute(context=context())


def test_copying_a_model_folder_keeps_its_digest(root, champion, client, tmp_path):
    """What the integrity check relies on: the digest covers content, not where the folder lives."""
    import mlflow

    from mlops_ops.core.storage import directory_sha256

    first = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{champion}", dst_path=str(tmp_path / "a"))
    shutil.copytree(first, tmp_path / "b")
    recorded = client.get_model_version(MODEL, champion).tags["mlops.artifact_sha256"]
    assert directory_sha256(first) == directory_sha256(tmp_path / "b") == recorded
