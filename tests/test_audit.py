"""The offline secret scan `make audit` runs (detect-secrets against .secrets.baseline):
clean on the tracked files, and it would catch a key someone commits."""

import subprocess

from conftest import REPO_ROOT, VENV_BIN

HOOK = [str(VENV_BIN / "detect-secrets-hook"), "--baseline", ".secrets.baseline"]


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [f for f in listed.stdout.split("\0") if f]


def test_no_secret_in_the_tracked_files_beyond_the_reviewed_baseline():
    done = subprocess.run([*HOOK, *tracked_files()], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_committed_cloud_key_or_password_is_caught_by_file_and_line(tmp_path):
    leaked = tmp_path / "settings.py"
    # Built here, so that this file holds neither itself.
    key, url = "AKIA" + "Q3EGUB6NEXAMPLE7", "postgresql://u:" + "hunter2x@db/x"
    leaked.write_text(f'AWS_ACCESS_KEY_ID = "{key}"\nDB_URL = "{url}"\n')
    done = subprocess.run([*HOOK, str(leaked)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1
    assert "AWS Access Key" in done.stdout and f"{leaked}:1" in done.stdout
    assert "Basic Auth Credentials" in done.stdout and f"{leaked}:2" in done.stdout
