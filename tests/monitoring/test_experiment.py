"""The experiment verdict on simulated live traffic with known truth: a challenger truly
better, truly worse, and equal, in shadow and in split mode; and the test of the test:
under "equal", read after every batch of labels, the share of false "better" verdicts
across many seeded experiments stays at or below alpha."""

import numpy as np
import pandas as pd
import pytest

from mlops_starter.config import ExperimentConfig
from mlops_starter.monitoring.experiment import confidence_sequence, decide, matured
from mlops_starter.monitoring.inputs import MonitorError
from mlops_starter.tasks.binary import BinaryAnswers

CHAMPION, CHALLENGER = "3", "4"
BINARY = BinaryAnswers(0.3, "yes")  # how simulate's log is read: the positive label is "yes"
NOW = pd.Timestamp("2026-06-01", tz="UTC")
# How far each version's log-odds stray from the truth: less noise, a better model.
NOISE = {"better": 0.35, "equal": 0.7, "worse": 1.2}


def simulate(mode: str, truth: str, rows: int, seed: int, share: float = 0.5):
    """A prediction log, with each row's arm as the service logs it, and its labels: the
    champion's log-odds stray from the truth by NOISE["equal"], the challenger's by
    NOISE[truth]."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.0, 1.5, rows)
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    scores = {
        version: 1 / (1 + np.exp(-(logit + rng.normal(0, NOISE[kind], rows))))
        for version, kind in ((CHAMPION, "equal"), (CHALLENGER, truth))
    }
    ids = [f"C{i}" for i in range(rows)]
    common = {"request_id": [f"r{i}" for i in range(rows)], "id": ids}
    if mode == "shadow":
        log = pd.concat(
            pd.DataFrame(
                {**common, "model_version": v, "probability": p, "label": (p >= 0.3).astype(int)}
            ).assign(arm="champion" if v == CHAMPION else "shadow")
            for v, p in scores.items()
        )
    else:
        to_challenger = rng.random(rows) < share
        p = np.where(to_challenger, scores[CHALLENGER], scores[CHAMPION])
        version = np.where(to_challenger, CHALLENGER, CHAMPION)
        log = pd.DataFrame(
            {**common, "model_version": version, "probability": p, "label": (p >= 0.3).astype(int)}
        )
        log["arm"] = np.where(to_challenger, "challenger", "champion")
    log["timestamp"] = NOW - pd.Timedelta(days=40)
    labels = pd.DataFrame({"id": ids, "churned": np.where(y, "yes", "no")})
    return log.reset_index(drop=True), labels


def verdict(mode, log, labels, evidence=True, **settings):
    config = ExperimentConfig(challenger_share=0.5, **settings)
    rows = matured(log, labels, "churned", config, NOW)
    return decide(rows, mode, CHAMPION, CHALLENGER, config, "pr_auc", BINARY, evidence)


@pytest.mark.parametrize("mode", ["shadow", "split"])
@pytest.mark.parametrize("truth", ["better", "worse", "equal"])
def test_the_verdict_is_right_once_enough_labels_matured(mode, truth):
    log, labels = simulate(mode, truth, 20_000, seed=11)
    found = verdict(mode, log, labels)
    assert found["verdict"] == {"better": "better", "worse": "worse", "equal": "undecided"}[truth]
    assert found["matured_rows"] == 20_000
    # Equal versions: undecided, and (paired, so precise enough by now) known to differ by
    # less than the gain worth finding; a split's noisier interval is not there yet.
    if mode == "shadow" or truth != "equal":
        assert found["within_min_detectable_effect"] == (truth == "equal")
    effect = found["effect"]
    assert effect["low"] <= effect["estimate"] <= effect["high"]
    if mode == "shadow":
        assert found["mcnemar"]["p_value"] >= 0 and "gate_metric" in found
    else:
        assert set(found["arms"]) == {CHAMPION, CHALLENGER}


@pytest.mark.parametrize("mode", ["shadow", "split"])
def test_false_better_verdicts_under_equal_stay_below_alpha_however_often_it_is_read(mode):
    """200 experiments whose versions are equally good, each read after every 1,000
    matured rows up to 8,000: an experiment is a false alarm if any read says better."""
    alpha, experiments, looks = 0.05, 200, range(1_000, 8_001, 1_000)
    config = ExperimentConfig(challenger_share=0.5, alpha=alpha)
    false_alarms = 0
    for seed in range(experiments):
        log, labels = simulate(mode, "equal", 8_000, seed=1_000 + seed)
        rows = matured(log, labels, "churned", config, NOW)
        arrival = rows["request_id"].str[1:].astype(int)  # requests in the order they came
        for seen in looks:
            found = decide(
                rows[arrival < seen], mode, CHAMPION, CHALLENGER, config, "pr_auc", BINARY, False
            )
            if found["verdict"] == "better":
                false_alarms += 1
                break
    print(f"{mode}: {false_alarms} false 'better' of {experiments} experiments")  # pytest -s
    assert false_alarms / experiments <= alpha, false_alarms


def test_rows_not_yet_matured_or_unlabelled_do_not_count():
    log, labels = simulate("split", "better", 1_000, seed=3)
    log.loc[:199, "timestamp"] = NOW - pd.Timedelta(hours=1)  # labels not final yet
    found = verdict("split", log, labels.iloc[100:])
    assert found["matured_rows"] == 800
    assert found["rows_still_needed"] is not None and found["rows_needed"] > 0


def test_a_shadow_log_without_the_challenger_s_scores_says_so():
    log, labels = simulate("shadow", "equal", 500, seed=4)
    with pytest.raises(MonitorError, match="scored by both version 3 and version 4"):
        verdict("shadow", log[log["model_version"] == CHAMPION], labels)
    with pytest.raises(MonitorError, match=r"lacks \['revenue'\]"):
        verdict("shadow", log, labels, outcome="revenue")


def test_the_sequence_covers_a_known_mean_at_every_look():
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(200):
        draws = rng.normal(0.3, 2.0, 5_000)
        for t in range(100, 5_001, 100):
            interval = confidence_sequence(draws[:t], 0.05, 5_000)
            if not interval.low <= 0.3 <= interval.high:
                misses += 1
                break
    assert misses / 200 <= 0.05


@pytest.mark.parametrize("mode", ["--mode split", "from the log", "a log without arms"])
def test_the_report_command_reads_the_log_and_labels_and_writes_its_verdict(
    tmp_path, capsys, monkeypatch, mode
):
    """The mode given, or, with serve.experiment.mode off, read from the log's arms (a
    bento `mlops package --mode` built, as `make retrain` does)."""
    import json

    import yaml
    from conftest import REPO_ROOT, deep_update

    from mlops_starter.cli.main import main as mlops

    log, labels = simulate("split", "better", 20_000, seed=21)
    if mode == "a log without arms":
        log = log.drop(columns="arm")
    with (tmp_path / "predictions-a.jsonl").open("w") as out:
        for row in log.to_dict("records"):
            entry = row | {"timestamp": row["timestamp"].isoformat(), "model": "m", "features": {}}
            out.write(json.dumps(entry) + "\n")
    labels.rename(columns={"id": "customer_id"}).to_csv(tmp_path / "labels.csv", index=False)
    params = deep_update(
        yaml.safe_load((REPO_ROOT / "params.yaml").read_text()),
        {"serve": {"experiment": {"challenger_share": 0.5}}},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github-output"))
    command = [
        *("--params", str(tmp_path / "params.yaml"), "experiment", "report"),
        *(mode.split() if mode.startswith("--") else []),
        *(
            "--log",
            str(tmp_path / "predictions-*.jsonl"),
            "--labels",
            str(tmp_path / "labels.csv"),
        ),
        *("--champion", CHAMPION, "--challenger", CHALLENGER, "--as-of", "2026-06-01"),
        *("--out", str(tmp_path / "experiment")),
    ]
    if mode == "a log without arms":
        with pytest.raises(SystemExit) as refused:
            mlops(command)
        assert refused.value.code == 2
        assert "the log holds no experiment's rows: name the experiment's mode with --mode" in (
            capsys.readouterr().err
        )
        return
    mlops(command)
    said = capsys.readouterr().out
    assert "challenger 4 vs champion 3: BETTER on 20000 matured rows" in said
    assert (tmp_path / "github-output").read_text() == "verdict=better\n"  # for CD
    written = json.loads((tmp_path / "experiment/experiment.json").read_text())
    assert written["verdict"] == "better" and written["effect"]["low"] > 0
    assert written["mode"] == "split"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A real (local SQLite) registry of the params' model: gated versions 3 and 4, 3
    the champion; the CLI reaches it through MLFLOW_TRACKING_URI."""
    from mlflow.tracking import MlflowClient

    from mlops_starter.config import Config
    from mlops_starter.registry.model_registry import GATE_TAG, REGISTRATION_TAG, Registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    name = Config.from_yaml("params.yaml").mlflow.registered_model
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    (tmp_path / "model").mkdir()
    for _ in range(4):
        client.create_model_version(
            name, str(tmp_path / "model"), tags={GATE_TAG: "true", REGISTRATION_TAG: "complete"}
        )
    found = Registry(client, name)
    found.promote(CHAMPION, "tester")
    return found


def conclude(tmp_path, truth: str, mode: str = "shadow", as_of: str = "2026-06-01"):
    """`mlops experiment conclude` on the verdict of a simulated experiment."""
    import json

    from mlops_starter.cli.main import main as mlops

    log, labels = simulate(mode, truth, 20_000, seed=31)
    found = verdict(mode, log, labels, evidence=False) | {"as_of": as_of}
    report = tmp_path / "experiment.json"
    report.write_text(json.dumps(found))
    mlops(["experiment", "conclude", "--report", str(report), "--actor", "cd"])
    return found


def test_a_better_verdict_promotes_the_challenger_once_and_rollback_undoes_it(
    registry, tmp_path, capsys
):
    conclude(tmp_path, "better")
    assert str(registry.champion().version) == CHALLENGER
    move = registry.history()[-1]
    assert (move.action, move.from_version, move.to_version) == ("experiment-promote", "3", "4")
    assert "challenger 4 better on 20000 matured rows" in move.reason
    assert "experiment-promote: champion 3 -> 4 by cd" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        conclude(tmp_path, "better")  # the champion it was judged against is gone
    assert "is version 4, not 3 as this move expected" in capsys.readouterr().err
    assert registry.rollback("tester").to_version == CHAMPION


def test_a_worse_verdict_ends_the_experiment_and_keeps_the_champion(registry, tmp_path, capsys):
    from mlops_starter.cli.main import main as mlops

    conclude(tmp_path, "worse")
    conclude(tmp_path, "worse", as_of="2026-06-02")  # the next day's report: logged once
    assert str(registry.champion().version) == CHAMPION
    moves = registry.history()
    assert [m.action for m in moves] == ["promote", "experiment-end"]
    assert (moves[-1].from_version, moves[-1].to_version) == (CHAMPION, CHAMPION)
    ended = registry.version(CHALLENGER).tags["experiment.experiment-1.ended"]
    assert "challenger 4 worse" in ended and "as of 2026-06-01" in ended
    # An ended experiment is not a promotion: rollback does not land on it.
    with pytest.raises(Exception, match="no earlier champion"):
        registry.rollback("tester")
    capsys.readouterr()
    mlops(["history"])
    assert "experiment-end: champion 3 -> 3 by cd: experiment experiment-1" in (
        capsys.readouterr().out
    )


def test_an_undecided_verdict_moves_nothing(registry, tmp_path, capsys):
    conclude(tmp_path, "equal", mode="split")
    assert "not yet decided; nothing moves" in capsys.readouterr().out
    assert [m.action for m in registry.history()] == ["promote"]
