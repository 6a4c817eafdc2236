"""The team stack in deploy/: no Docker engine runs here, so check everything that can be
checked without one. The compose file parses and holds the services the docs name,
every secret comes from the env file, the tracking server is the locked MLflow with
PostgreSQL, proxied artifacts and authentication, Prometheus scrapes the service, and
Grafana's dashboard reads from the provisioned source (its metrics are checked against
a real scrape in tests/serving/test_serving_e2e.py)."""

import json
import re
from pathlib import Path

import yaml
from conftest import DASHBOARD, REPO_ROOT, dashboard_metric_names

DEPLOY = REPO_ROOT / "deploy"
SERVICES = {
    "postgres",
    "object-store",
    "create-bucket",
    "mlflow",
    "classifier",
    "monitor",
    "prometheus",
    "grafana",
}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def team_stack_page() -> str:
    return (REPO_ROOT / "docs/how-to/team-stack.md").read_text()


def test_compose_holds_every_service_the_docs_name():
    services = compose()["services"]
    assert set(services) == SERVICES
    page = team_stack_page()
    for name in SERVICES:
        assert f"`{name}`" in page, f"docs/how-to/team-stack.md does not mention {name}"


def test_every_variable_comes_from_the_env_file_and_no_secret_is_written_in():
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used <= set(example), used - set(example)
    for service in compose()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{key} is written into compose.yaml"
    assert "/deploy/.env" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def test_the_tracking_server_is_the_locked_mlflow_on_postgres_with_proxied_artifacts_and_auth():
    dockerfile = (DEPLOY / "mlflow/Dockerfile").read_text()
    locked = re.search(r"^mlflow==([\d.]+)", (REPO_ROOT / "requirements.lock").read_text(), re.M)
    assert f'"mlflow[auth]=={locked.group(1)}"' in dockerfile
    assert "--artifacts-destination s3://" in dockerfile and "--app-name basic-auth" in dockerfile
    mlflow = compose()["services"]["mlflow"]
    assert mlflow["environment"]["BACKEND_STORE_URI"].startswith("postgresql://")
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://object-store:9000"
    assert {"MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"} <= set(
        mlflow["environment"]
    )
    ini = (DEPLOY / "mlflow/basic_auth.ini").read_text()
    assert "admin_password" not in ini.replace("# ", "").split("[mlflow]")[1].split("\n#")[0]


def test_prometheus_scrapes_the_classifier_service_and_its_monitor():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"classifier", "monitor"}
    targets = {}
    for name, job in jobs.items():
        assert job["metrics_path"] == "/metrics"
        [target] = job["static_configs"][0]["targets"]
        targets[name] = target.split(":")
    host, port = targets["classifier"]
    assert host == "classifier"
    assert any(p.endswith(f":{port}") for p in compose()["services"]["classifier"]["ports"])
    host, port = targets["monitor"]
    command = compose()["services"]["monitor"]["command"]
    assert host == "monitor"
    assert command[command.index("--export-metrics") + 1] == f"0.0.0.0:{port}"
    mounted = compose()["services"]["prometheus"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == (DEPLOY / "prometheus.yml").resolve()


def test_the_monitor_follows_the_classifiers_log_with_the_projects_params():
    services = compose()["services"]
    monitor, classifier = services["monitor"], services["classifier"]
    assert monitor["image"] == classifier["image"]
    command = [*monitor["entrypoint"], *monitor["command"]]
    assert command[:3] == ["python", "-m", "mlops_starter.cli.main"]
    assert command[command.index("--follow") + 1].isdigit()
    log_dir = classifier["environment"]["MLOPS_PREDICTION_LOG_DIR"]
    assert command[command.index("--log") + 1] == f"{log_dir}/predictions-*.jsonl*"
    volumes = [volume.split(":") for volume in monitor["volumes"]]
    assert ["predictions", log_dir, "ro"] in volumes
    params = command[command.index("--params") + 1]
    [source] = [v[0] for v in volumes if v[1] == params]
    assert (DEPLOY / source).resolve() == (REPO_ROOT / "params.yaml").resolve()
    assert monitor["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_grafana_loads_the_dashboard_from_the_provisioned_source():
    board = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"])
    assert Path(DEPLOY / mounts["./grafana/dashboards"].lstrip("./")).name == "dashboards"
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    titles = {panel["title"] for panel in board["panels"]}
    for needed in (
        "Requests per second",
        "Error share",
        "Latency",
        "Predicted probability",
        "Input-quality issues by field",
        "Served model version",
        "Scoring latency by version",
        "Experiment: scored batches per second by version",
        "Monitor: estimated performance before labels",
        "Monitor: drift per window",
        "Monitor: alerts by check",
    ):
        assert any(t.startswith(needed) for t in titles), needed
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            assert re.search(r"\b(bentoml|mlops)_\w+", target["expr"]), target["expr"]
    assert {
        "bentoml_service_request_total",
        "mlops_input_quality_issues_total",
        "mlops_scoring_seconds_bucket",
        "mlops_experiment_active",
    } <= dashboard_metric_names()
    # During an experiment, each version's requests, latency and predicted rates apart.
    per_version = [
        t["expr"] for panel in board["panels"] for t in panel["targets"] if "version" in t["expr"]
    ]
    for metric in ("mlops_predictions_total", "mlops_scoring_seconds_bucket", "_count"):
        assert any(metric in expr and "by (" in expr for expr in per_version), metric


# Services that start as root, and why: checked so a new service must say so too.
STARTS_AS_ROOT = {
    "postgres": "its entrypoint owns the data directory, then runs the server as postgres",
    "object-store": "MinIO's image has no user of its own",
}


BENTO_IMAGE_SERVICES = {"classifier", "monitor"}  # the image `make containerize` built


def test_every_pulled_image_is_pinned_by_digest():
    """A tag can be re-pushed; a digest names one image. The classifier is the image
    `make containerize` built, named in deploy/.env."""
    for name, service in compose()["services"].items():
        if "build" in service:
            dockerfile = (DEPLOY / service["build"]["context"] / "Dockerfile").read_text()
            [base] = re.findall(r"^FROM (\S+)", dockerfile, re.M)
            assert re.search(r"@sha256:[0-9a-f]{64}$", base), f"{name}: FROM {base}"
        elif name not in BENTO_IMAGE_SERVICES:
            assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", service["image"]), name


def test_services_run_as_unprivileged_users_where_their_images_allow():
    for name, service in compose()["services"].items():
        if name in STARTS_AS_ROOT or name in BENTO_IMAGE_SERVICES:  # uid 1034, tested
            continue
        if "build" in service:
            dockerfile = (DEPLOY / service["build"]["context"] / "Dockerfile").read_text()
            users = re.findall(r"^USER (\S+)", dockerfile, re.M)
            assert users and users[-1] not in ("root", "0"), f"{name} runs as root"
        else:
            assert str(service.get("user", "0")).split(":")[0] not in ("root", "0"), name


def test_the_classifier_asks_for_a_key_from_the_env_file():
    environment = compose()["services"]["classifier"]["environment"]
    assert environment["MLOPS_API_KEY"] == "${CLASSIFIER_API_KEY:?set in deploy/.env}"
    assert "CLASSIFIER_API_KEY=" in (DEPLOY / ".env.example").read_text()
