"""The trigger forms' Params: a JSON schema with descriptions, and bad input refused with the param's name."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
FINGERPRINT = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags


def _validate(dag, conf: dict) -> dict:
    # What Airflow does with a trigger's conf: the DAG's params updated with it, then validated.
    import copy

    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_every_manual_trigger_param_has_a_title_and_a_description(dags):
    expected = {
        "retrain": {"reason", "data_version", "force"},
        "rollback": {"reason", "target_version"},
        "batch_score": {"interval_start", "interval_end"},
        "promote": {"version", "force", "reason"},
    }
    for dag_id, names in expected.items():
        params = dags[dag_id].params
        assert names <= set(params), dag_id
        for name in names:
            param = params.get_param(name)
            assert param.schema.get("type") and param.schema.get("title") and param.description, (
                dag_id,
                name,
            )


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("retrain", {"reason": "new weather feed", "data_version": FINGERPRINT, "force": True}),
        ("retrain", {}),
        ("rollback", {"reason": "complaints", "target_version": "3"}),
        ("rollback", {"reason": "complaints"}),
        ("batch_score", {"interval_start": "2013-07-01", "interval_end": "2013-07-02T06:00:00+00:00"}),
        ("batch_score", {}),
        ("promote", {}),
        ("promote", {"version": "2", "force": True, "reason": "hotfix"}),
    ],
)
def test_good_input_is_accepted(dags, dag_id, conf):
    validated = _validate(dags[dag_id], conf)
    assert all(validated[key] == value for key, value in conf.items())


@pytest.mark.parametrize(
    ("dag_id", "conf", "named"),
    [
        ("retrain", {"data_version": "v3"}, "data_version"),
        ("retrain", {"data_version": "sha256:XYZ"}, "data_version"),
        ("retrain", {"force": "yes"}, "force"),
        ("retrain", {"reason": 3}, "reason"),
        ("rollback", {"reason": "   "}, "reason"),
        ("rollback", {}, "reason"),
        ("rollback", {"reason": "bad model", "target_version": "latest"}, "target_version"),
        ("rollback", {"reason": "bad model", "target_version": "0"}, "target_version"),
        ("batch_score", {"interval_start": "July 1st"}, "interval_start"),
        ("promote", {"version": "v2"}, "version"),
        ("batch_score", {"interval_end": "2013-07-01T25"}, "interval_end"),
    ],
)
def test_bad_input_is_refused_naming_the_param(dags, dag_id, conf, named):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError) as raised:
        _validate(dags[dag_id], conf)
    assert named in str(raised.value)
