"""A challenger beside the champion in one bento, served by a real `bentoml serve`: in
shadow, in split, and when the challenger cannot load; then the verdict on the real
prediction log and the move it makes in the registry.

The challenger is a second registry version of the champion's own model file, so the two
score alike and any difference the tests see comes from the routing, not the models. The
statistics of the verdict on truly better, worse and equal challengers are
tests/monitoring/test_experiment.py's."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import VENV_BIN, columns_of, dashboard_metric_names, logged

from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.serving.routing import to_challenger
from mlops_starter.storage import json_records

pytestmark = pytest.mark.e2e

ID = "customer_id"
SHARE = 0.5  # split: half the rows, so both arms show in a few requests
FAR_FUTURE = "2100-01-01"  # every logged prediction has matured by then

ADD_VERSIONS = """
import json, sys
from mlops_starter.registry.model_registry import Registry
registry = Registry.connect(sys.argv[1])
champion = registry.champion()
added = [
    registry.client.create_model_version(
        registry.name, champion.source, run_id=champion.run_id, tags=champion.tags,
        model_id=champion.model_id,
    ).version
    for _ in range(2)
]
print(json.dumps([str(champion.version), *map(str, added)]))
"""

REMOVE_VERSIONS = """
import sys
from mlops_starter.registry.model_registry import Registry
registry = Registry.connect(sys.argv[1])
for version in sys.argv[2:]:
    registry.client.delete_model_version(registry.name, version)
"""


@pytest.fixture(scope="module")
def versions(packaged):
    """The champion and two more gated versions of its model file: a challenger, and one
    whose stored files the broken-challenger test damages. Removed afterwards, so the
    other tests of the shared `dvc repro` see its registry as it was."""
    name = packaged.params()["mlflow"]["registered_model"]
    added = packaged.run(sys.executable, "-c", ADD_VERSIONS, name)
    champion, challenger, broken = json.loads(added.stdout)
    yield champion, challenger, broken
    packaged.run(sys.executable, "-c", REMOVE_VERSIONS, name, challenger, broken)


def experiment_params(packaged, tmp_path: Path, mode: str, workers: int) -> Path:
    params = packaged.params()
    params["serve"]["workers"] = workers
    params["serve"]["experiment"] |= {"mode": mode, "challenger_share": SHARE}
    path = tmp_path / f"params-{mode}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def package(packaged, params: Path, challenger: str, check: bool = True):
    done = packaged.run(
        str(VENV_BIN / "mlops"),
        "--params",
        str(params),
        "package",
        "--challenger",
        challenger,
        check=check,
    )
    found = re.search(r"built bento (\S+)", done.stdout)
    return found.group(1) if found else done


@pytest.fixture(scope="module")
def rows(packaged):
    """Test-set records (id first) and their labels."""
    test = pd.read_parquet(packaged.root / "data/split/test.parquet").head(120)
    info = packaged.read_json("models/model.json")
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    target = packaged.params()["data"]["target"]
    return json_records(test[[ID, *features]]), test[[ID, target]]


def serve(packaged, bento: str, scratch: Path):
    env = packaged.env | {"MLOPS_PREDICTION_LOG_DIR": str(scratch / "predictions")}
    return bentoml_server(bento, free_port(), scratch / "serve.log", env)


def metric_lines(client: httpx.Client, name: str) -> list[str]:
    return [line for line in client.get("/metrics").text.splitlines() if line.startswith(name)]


def report(packaged, params: Path, scratch: Path, labels: pd.DataFrame, versions, *extra: str):
    labels_path = scratch / "labels.csv"
    labels.to_csv(labels_path, index=False)
    done = packaged.run(
        str(VENV_BIN / "mlops"), "--params", str(params), "experiment", "report",
        "--log", str(scratch / "predictions" / "predictions-*.jsonl*"),
        "--labels", str(labels_path), "--champion", versions[0], "--challenger", versions[1],
        "--as-of", FAR_FUTURE, "--out", str(scratch / "experiment"), *extra,
    )  # fmt: skip
    return done.stdout, json.loads((scratch / "experiment" / "experiment.json").read_text())


def test_a_challenger_needs_an_experiment_mode_in_params(packaged, versions):
    refused = package(packaged, packaged.root / "params.yaml", versions[1], check=False)
    assert refused.returncode != 0
    assert "serve.experiment.mode is off" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_shadow_answers_with_the_champion_and_logs_both_scores(packaged, versions, rows, tmp_path):
    champion, challenger, _ = versions
    records, labels = rows
    params = experiment_params(packaged, tmp_path, "shadow", workers=1)
    bento = package(packaged, params, challenger)
    with (
        serve(packaged, bento, tmp_path) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        experiment = client.get("/metadata").json()["experiment"]
        assert experiment == {
            "name": "experiment-1",
            "mode": "shadow",
            "active": True,
            "challenger": challenger,
            "challenger_share": SHARE,
            "off_because": None,
        }
        answer = client.post(
            "/predict", json={"records": records[:60]}, headers={"X-Request-ID": "shadow-records"}
        )
        assert answer.status_code == 200, answer.text
        assert {p["model_version"] for p in answer.json()} == {champion}
        columnar = client.post(
            "/predict",
            json={"columns": columns_of(records[60:])},
            headers={"X-Request-ID": "shadow-columns"},
        )
        assert columnar.status_code == 200, columnar.text
        assert columnar.json()["model_version"] == champion
        assert "model_version" not in columnar.json()["columns"]  # only a split says per row
        no_id = {k: v for k, v in records[0].items() if k != ID}
        alone = client.post(
            "/predict", json={"records": [no_id]}, headers={"X-Request-ID": "no-id"}
        )
        assert alone.status_code == 200 and alone.json()[0]["id"] is None

        for request_id, count in (("shadow-records", 60), ("shadow-columns", 60), ("no-id", 1)):
            entries = logged(tmp_path / "predictions", request_id, 2 * count)
            answered = {(e["id"], e["model_version"], e["arm"]): e for e in entries}
            assert len(entries) == len(answered) == 2 * count, request_id
            for entry in entries:
                if entry["arm"] == "shadow":
                    paired = answered[(entry["id"], champion, "champion")]
                    assert entry["model_version"] == challenger and entry["features"] is None
                    assert entry["probability"] == pytest.approx(paired["probability"], abs=1e-9)
        # Each version's rows apart; the shadow scored every row the champion answered.
        scored = {
            arm: sum(
                float(line.split()[-1])
                for line in metric_lines(client, "mlops_predictions_total")
                if f'arm="{arm}"' in line and f'version="{version}"' in line
            )
            for arm, version in (("champion", champion), ("shadow", challenger))
        }
        assert scored == {"champion": 121, "shadow": 121}
        assert any(
            'arm="shadow"' in line for line in metric_lines(client, "mlops_scoring_seconds_count")
        )
        [active] = metric_lines(client, "mlops_experiment_active")
        assert 'mode="shadow"' in active and active.endswith(" 1.0")
        exported = {line.split("{")[0].split()[0] for line in metric_lines(client, "")}
        assert dashboard_metric_names() <= exported, dashboard_metric_names() - exported

    printed, verdict = report(packaged, params, tmp_path, labels, versions)
    # The same model twice: every paired row has the same score, so nothing is decided.
    assert verdict["mode"] == "shadow" and verdict["paired_rows"] == 120
    assert verdict["verdict"] == "undecided" and verdict["effect"]["estimate"] == 0
    assert "UNDECIDED on 120 matured rows" in printed
    concluded = packaged.run(
        str(VENV_BIN / "mlops"), "--params", str(params), "experiment", "conclude",
        "--report", str(tmp_path / "experiment" / "experiment.json"),
    )  # fmt: skip
    assert "nothing moves" in concluded.stdout
    monitored = packaged.run(
        str(VENV_BIN / "mlops"), "--params", str(params), "monitor",
        "--log", str(tmp_path / "predictions" / "predictions-*.jsonl*"),
        "--out", str(tmp_path / "monitoring"), check=False,
    )  # fmt: skip
    # The monitor watches the champion's answers, never the shadow's scores.
    assert (
        f"version {champion}: " in monitored.stdout and ", 121 in 1 window(s)" in monitored.stdout
    ), monitored.stderr


def test_split_sends_each_id_to_one_version_on_every_worker(packaged, versions, rows, tmp_path):
    champion, challenger, _ = versions
    records, labels = rows
    params = experiment_params(packaged, tmp_path, "split", workers=2)
    bento = package(packaged, params, challenger)
    ids = [r[ID] for r in records]
    expected = np.where(
        to_challenger(ids, len(ids), "experiment-1", SHARE, np.random.default_rng()),
        challenger,
        champion,
    ).tolist()
    assert set(expected) == {champion, challenger}
    with (
        serve(packaged, bento, tmp_path) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        # One record per request, twice over: whichever worker takes it, an id meets its arm.
        for round_ in range(2):
            for record, version in zip(records[:40], expected, strict=False):
                answer = client.post(
                    "/predict", json={"records": [record]}, headers={"X-Request-ID": f"r{round_}"}
                )
                assert answer.json()[0]["model_version"] == version, record[ID]
        columnar = client.post(
            "/predict", json={"columns": columns_of(records)}, headers={"X-Request-ID": "cols"}
        )
        assert columnar.json()["columns"]["model_version"] == expected
        without_ids = [{k: v for k, v in r.items() if k != ID} for r in records]
        dealt = client.post("/predict", json={"records": without_ids}).json()
        assert {p["model_version"] for p in dealt} == {champion, challenger}  # at random

        entries = logged(tmp_path / "predictions", "cols", len(records))
        assert [e["model_version"] for e in entries] == expected
        assert {e["arm"] for e in entries if e["model_version"] == challenger} == {"challenger"}
        assert {e["arm"] for e in entries if e["model_version"] == champion} == {"champion"}
        answered = [
            line for line in metric_lines(client, "mlops_predictions_total") if "arm=" in line
        ]
        assert {re.search(r'version="(\w+)"', line).group(1) for line in answered} == {
            champion,
            challenger,
        }

    printed, verdict = report(packaged, params, tmp_path, labels, versions)
    assert verdict["mode"] == "split"
    arms = verdict["arms"]
    # 2 x 40 single-record requests and the columnar one, each row with its label.
    assert arms[champion]["rows"] + arms[challenger]["rows"] == 80 + len(records)
    assert arms[challenger]["rows"] == 2 * expected[:40].count(challenger) + expected.count(
        challenger
    )
    assert verdict["verdict"] in {"better", "worse", "undecided"} and "matured rows" in printed


def test_a_challenger_that_cannot_load_leaves_the_champion_serving(
    packaged, versions, rows, tmp_path
):
    champion, _, broken = versions
    records, _ = rows
    params = experiment_params(packaged, tmp_path, "split", workers=1)
    bento = package(packaged, params, broken)
    store = Path(packaged.env["BENTOML_HOME"]) / "models"
    [model_dir] = [p for p in store.glob("*/*") if p.name.startswith(f"v{broken}-")]
    [model_file] = [p for p in (model_dir / "mlflow_model").rglob("*.skops")]
    kept = tmp_path / "model.skops"
    shutil.copy2(model_file, kept)
    model_file.write_bytes(b"not a model")
    try:
        with (
            serve(packaged, bento, tmp_path) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            experiment = client.get("/metadata").json()["experiment"]
            assert experiment["active"] is False and experiment["challenger"] is None
            assert f"v{broken}-" in experiment["off_because"]
            assert "failed to load" in experiment["off_because"]
            answer = client.post("/predict", json={"records": records[:50]})
            assert {p["model_version"] for p in answer.json()} == {champion}
            [active] = metric_lines(client, "mlops_experiment_active")
            assert active.endswith(" 0.0")
    finally:
        shutil.copy2(kept, model_file)


def test_a_challenger_of_another_schema_is_refused_naming_the_difference(
    packaged, versions, tmp_path
):
    """The challenger's stored metadata edited to lack a feature, as a version trained on
    another table would: `mlops package` names the feature and builds nothing."""
    _, _, other = versions
    params = experiment_params(packaged, tmp_path, "shadow", workers=1)
    package(packaged, params, other)  # imports it into the store, as it is
    store = Path(packaged.env["BENTOML_HOME"]) / "models"
    [model_yaml] = [p / "model.yaml" for p in store.glob("*/*") if p.name.startswith(f"v{other}-")]
    kept = model_yaml.read_text()
    info = yaml.safe_load(kept)
    dropped = sorted(info["metadata"]["feature_profile"])[0]
    del info["metadata"]["feature_profile"][dropped]
    model_yaml.write_text(yaml.safe_dump(info, sort_keys=False))
    try:
        refused = package(packaged, params, other, check=False)
    finally:
        model_yaml.write_text(kept)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"version {other} cannot challenge version" in refused.stderr
    assert f"lacks features the champion's requests carry: ['{dropped}']" in refused.stderr
    assert "built bento" not in refused.stdout
