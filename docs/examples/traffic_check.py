"""A monitoring check: alert when traffic falls below a floor, often the first sign that
a caller stopped sending or a route broke. List this module in params.yaml
`extensions` and set its floor there:

    monitor:
      custom:
        traffic_floor:
          min_records_per_hour: 50
"""

from typing import Any

from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.checks import Alert, Window, monitoring_check


@monitoring_check("traffic_floor")
def traffic_floor(window: Window, settings: MonitorConfig) -> tuple[dict[str, Any], list[Alert]]:
    floor = float(settings.custom.get("traffic_floor", {}).get("min_records_per_hour", 1))
    served = window.served
    span = (served["timestamp"].max() - served["timestamp"].min()).total_seconds()
    hours = max(span / 3600, 1.0) if len(served) else 1.0  # a burst counts as one hour
    rate = len(served) / hours
    figures = {"records_per_hour": round(rate, 1), "floor": floor}
    if rate >= floor:
        return figures, []
    message = f"{rate:.1f} records an hour, below the floor of {floor:g}"
    return figures, [Alert("traffic_floor", "records_per_hour", rate, floor, message)]
