"""Batch observation adds to a Prometheus histogram exactly what one call per value does."""

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from mlops_starter.serving.histogram import observe_all


def samples(registry):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_all_equals_one_observe_per_value():
    buckets = [round(0.05 * i, 2) for i in range(1, 21)]
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    single = Histogram("p", "p", buckets=buckets, registry=one_by_one)
    batch = Histogram("p", "p", buckets=buckets, registry=at_once)
    values = np.concatenate([np.random.default_rng(0).random(1000), buckets, [0.0, 1.0, 1.5]])
    for value in values:
        single.observe(float(value))
    observe_all(batch, values[:500])
    observe_all(batch, values[500:])
    expected, found = samples(one_by_one), samples(at_once)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        if key[0] == "p_sum":
            assert np.isclose(found[key], value)
        else:
            assert found[key] == value, key
