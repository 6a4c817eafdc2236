"""Each kind of corrupt table stops validation with a message that names the problem."""

import numpy as np
import pytest

from mlops_starter.config import ValidateConfig
from mlops_starter.tasks import Binary
from mlops_starter.validation.run import run_suite
from mlops_starter.validation.suite import config_expectations, profile_suite

ROLES = ["churned", "customer_id", "signup_date"]


def churn_checks(time_column="signup_date", positive_vs_rest=False):
    """The params.yaml checks of the demo's binary target, at a 1-20% positive rate."""
    task = Binary("churned", "two values", "yes", positive_vs_rest)
    band = ValidateConfig(positive_rate_min=0.01, positive_rate_max=0.2)
    return config_expectations(
        "churned", "customer_id", time_column, 500, task.expectations(20_000, band)
    )


@pytest.fixture(scope="module")
def expectations(demo_frame):
    return churn_checks() + profile_suite(demo_frame, "raw", skip=ROLES)["expectations"]


def failures_for(frame, expectations):
    report = run_suite(frame, expectations)
    assert not report.success
    return "\n".join(report.failures)


def test_a_clean_table_passes(demo_frame, expectations):
    report = run_suite(demo_frame, expectations)
    assert report.success, report.failures
    assert report.to_dict()["failed"] == 0


def test_fresh_data_from_the_same_process_passes(expectations):
    from mlops_starter.data.demo import generate_demo_table

    assert run_suite(generate_demo_table(2000, seed=99), expectations).success


def test_missing_column_is_named(demo_frame, expectations):
    message = failures_for(demo_frame.drop(columns=["contract"]), expectations)
    assert (
        "column 'contract': expected column 'contract' is present (from the suite file in "
        "validate.suite; `make suite` rebuilds it); the table has no such column" in message
    )
    assert len(message.splitlines()) == 1  # the other checks on it are skipped, not piled on


def test_wrong_type_is_named(demo_frame, expectations):
    frame = demo_frame.copy()
    frame["monthly_charges"] = frame["monthly_charges"].astype(str)
    message = failures_for(frame, expectations)
    assert "column 'monthly_charges'" in message and "is numeric" in message


def test_out_of_range_value_is_named_with_the_value(demo_frame, expectations):
    frame = demo_frame.copy()
    frame.loc[17, "tenure_months"] = 9999
    message = failures_for(frame, expectations)
    assert "expect_column_values_to_be_between failed on column 'tenure_months'" in message
    assert "9999" in message


def test_unknown_category_is_named(demo_frame, expectations):
    frame = demo_frame.copy()
    frame.loc[3, "plan"] = "platinum"
    assert "'plan'" in failures_for(frame, expectations)


def test_null_target_is_named(demo_frame, expectations):
    frame = demo_frame.copy()
    frame.loc[[1, 2], "churned"] = None
    assert "target 'churned' is never null (set by data.target in params.yaml); 2 offending" in (
        failures_for(frame, expectations)
    )


def test_a_check_from_params_names_its_setting_and_a_suite_check_names_the_suite(
    demo_frame, expectations
):
    frame = demo_frame.copy()
    frame["churned"] = "yes"  # every row positive: far above the rate band
    frame.loc[17, "tenure_months"] = 9999
    message = failures_for(frame, expectations)
    assert "positive rate of 'churned' is at most 0.2 (set by validate.positive_rate_max" in (
        message
    )
    assert "(from the suite file in validate.suite; `make suite` rebuilds it)" in message


def test_duplicate_ids_are_named_with_the_ids(demo_frame, expectations):
    frame = demo_frame.copy()
    frame.loc[5, "customer_id"] = frame.loc[6, "customer_id"]
    message = failures_for(frame, expectations)
    assert "id 'customer_id' is unique" in message and frame.loc[6, "customer_id"] in message


def test_empty_table_fails_the_row_count(demo_frame, expectations):
    assert "at least 500 rows" in failures_for(demo_frame.head(0), expectations)


def test_positive_rate_outside_the_band_is_named(demo_frame, expectations):
    frame = demo_frame.copy()
    frame["churned"] = np.where(np.arange(len(frame)) % 2 == 0, "yes", "no")
    assert "positive rate of 'churned' is at most 0.2" in failures_for(frame, expectations)


def test_a_column_that_starts_losing_values_is_named(demo_frame, expectations):
    broken = demo_frame.copy()
    broken.loc[broken.index[:300], "monthly_charges"] = np.nan  # never missing when profiled
    failures = failures_for(broken, expectations)
    assert "column 'monthly_charges' is missing in at most 1.0% of rows" in failures
    assert "trusted table: 0.0%" in failures


def test_missing_rates_near_the_profiled_one_pass(demo_frame, expectations):
    noisy = demo_frame.copy()
    # data_usage_gb was missing ~8% of the time; a little more is noise, not a broken feed.
    noisy.loc[noisy.sample(frac=0.02, random_state=0).index, "data_usage_gb"] = np.nan
    assert run_suite(noisy, expectations).success


def test_positive_vs_rest_accepts_a_target_with_three_values(demo_frame):
    frame = demo_frame.copy()
    frame.loc[frame.index[:50], "churned"] = "paused"
    checks = churn_checks(None, positive_vs_rest=True)
    assert run_suite(frame, checks).success
    strict = churn_checks(None)
    assert "exactly two classes" in failures_for(frame, strict)
