from pathlib import Path

import pytest
import yaml
from conftest import deep_update

from mlops_starter.config import Config
from mlops_starter.errors import ConfigError

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def repo_params() -> dict:
    return yaml.safe_load(REPO_PARAMS.read_text())


def test_repository_params_load_into_typed_config():
    cfg = Config.from_yaml(REPO_PARAMS)
    assert cfg.data.is_demo
    assert set(cfg.train.enabled_candidates()) == {
        "logistic_regression",
        "random_forest",
        "xgboost",
        "elastic_net",  # trained for a regression task only
    }
    assert cfg.non_feature_columns == ["churned", "customer_id", "signup_date"]


def test_unknown_key_is_named():
    raw = repo_params()
    raw["train"]["cv_fold"] = 5
    with pytest.raises(ConfigError, match=r"train\.cv_fold: Extra inputs are not permitted"):
        Config.from_dict(raw)


def test_bad_value_names_the_setting():
    raw = repo_params()
    raw["train"]["candidates"]["xgboost"]["learning_rate"] = -1
    with pytest.raises(ConfigError, match=r"train\.candidates\.xgboost\.learning_rate"):
        Config.from_dict(raw)


def test_time_split_without_time_column_is_refused():
    raw = repo_params()
    raw["data"]["time_column"] = None
    raw["split"]["strategy"] = "time"
    with pytest.raises(ConfigError, match=r"needs data\.time_column"):
        Config.from_dict(raw)


def test_target_cannot_also_be_dropped():
    raw = repo_params()
    raw["data"]["drop_columns"] = ["churned"]
    with pytest.raises(ConfigError, match="drop_columns names"):
        Config.from_dict(raw)


def test_all_candidates_disabled_is_refused():
    raw = repo_params()
    for params in raw["train"]["candidates"].values():
        params["enabled"] = False
    with pytest.raises(ConfigError, match="enable at least one"):
        Config.from_dict(raw)


def test_missing_file_and_bad_yaml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        Config.from_yaml(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(broken)


def test_unquoted_yes_label_stays_a_string_as_dvc_writes_it(tmp_path):
    """`dvc exp run -S` rewrites params.yaml as YAML 1.2, where `yes` is text, not True."""
    text = REPO_PARAMS.read_text().replace('positive_label: "yes"', "positive_label: yes")
    assert "positive_label: yes" in text
    (tmp_path / "params.yaml").write_text(text)
    assert Config.from_yaml(tmp_path / "params.yaml").data.positive_label == "yes"


@pytest.mark.parametrize(
    "change, named",
    [
        ({"train": {"tuning": {"enabled": True}}}, "train.tuning"),
        ({"train": {"resampling": "smote"}}, "train.resampling"),
        ({"train": {"candidates": {"xgboost": {"enabled": False}}}}, "xgboost"),
    ],
)
def test_streaming_refuses_what_needs_every_row_by_name(change, named):
    raw = Config.from_yaml().model_dump(by_alias=True)
    raw["scale"]["mode"] = "streaming"
    for section, values in change.items():
        deep_update(raw[section], values)
    with pytest.raises(ConfigError, match=named):
        Config.from_dict(raw)


@pytest.mark.parametrize(
    ("source", "recheck", "named"),
    [
        ({"url": "sqlite:///crm.db", "table": "customers"}, [], r"set recheck_source: \[table\]"),
        ("data/source/customers.csv", ["table"], r"set recheck_source: \[\]"),
    ],
)
def test_recheck_source_must_say_whether_dvc_can_hash_the_source(source, recheck, named):
    """dvc.yaml builds the fingerprint@table stage from data.recheck_source: a database
    without it would never be seen to change, a file with it would rerun every time."""
    raw = deep_update(repo_params(), {"data": {"source": source, "recheck_source": recheck}})
    with pytest.raises(ConfigError, match=r"data: .*" + named):
        Config.from_dict(raw)
