"""Alerts posted where people read them: a chat webhook in Slack's format (Mattermost,
Rocket.Chat and Teams' Slack-compatible hooks read it too).

The URL comes from the environment (`monitor.notify.webhook_env`), never from
params.yaml, since anyone holding it can post to the channel. A post that fails is
reported on stderr and the monitor goes on: its exit code and its page carry the
alert whatever the chat does."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import httpx

from mlops_starter.config import NotifyConfig

TIMEOUT_S = 10
SHOWN_ALERTS = 10  # a chat message stays short; the page has the rest


def page_link(settings: NotifyConfig, page: str, env: Mapping[str, str]) -> str:
    """Where the reader finds the page: the configured address, the GitHub Actions run
    that keeps it as an artifact, or the file's path."""
    if settings.page_url:
        return settings.page_url
    if run := env.get("GITHUB_RUN_ID"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{run}"
    return page


def message(report: dict[str, Any], link: str) -> dict[str, str]:
    """Slack's `text` payload: the model, each alert with the window it began in, the page."""
    alerts = report["alerts"]
    lines = [f"*{report['model']} version {report['version']}: {len(alerts)} alert(s)*"]
    for alert in alerts[:SHOWN_ALERTS]:
        began = alert["began"][:16].replace("T", " ")
        lines.append(f"• {alert['check'].replace('_', ' ')} since {began}: {alert['message']}")
    if len(alerts) > SHOWN_ALERTS:
        lines.append(f"… and {len(alerts) - SHOWN_ALERTS} more")
    lines.append(f"<{link}|The monitoring page>")
    return {"text": "\n".join(lines)}


def post_alerts(
    report: dict[str, Any], settings: NotifyConfig, page: str, env: Mapping[str, str]
) -> bool:
    """Post the report's alerts to the webhook the environment names; True when posted.
    No alert, or no webhook set: nothing is posted."""
    url = env.get(settings.webhook_env)
    if not url or not report["alerts"]:
        return False
    payload = message(report, page_link(settings, page, env))
    try:
        answer = httpx.post(url, json=payload, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:  # the URL is a secret: name the failure, not the address
        failure = type(exc).__name__
    else:
        if answer.is_success:
            return True
        failure = f"HTTP {answer.status_code}"
    print(f"the alerts were not posted to ${settings.webhook_env}: {failure}", file=sys.stderr)
    return False
