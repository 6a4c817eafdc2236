"""A model file cannot run code: every load goes through storage.load_model's allow-list,
and a file naming anything else, or a model stored as a pickle, is refused by name."""

import os

import mlflow
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression

from mlops_starter.errors import ModelFileError
from mlops_starter.storage import LoggedModel, load_model, model_bytes

X = np.array([[0.0], [1.0], [2.0], [3.0]])
y = np.array([0, 0, 1, 1])


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"run": os.system}, "system"),
        ([eval], "builtins.eval"),
        ({"pickle": __import__("pickle").loads}, "loads"),
        ({"weight": __import__("fractions").Fraction(1, 3)}, "fractions.Fraction"),
    ],
)
def test_a_skops_file_naming_a_type_off_the_list_is_refused_by_name(tmp_path, payload, named):
    crafted = tmp_path / "model.skops"
    skops.io.dump(payload, crafted)
    with pytest.raises(ModelFileError, match=rf"outside the allow-list.*{named}"):
        load_model(crafted)


def test_a_file_that_is_not_skops_is_refused(tmp_path):
    crafted = tmp_path / "model.skops"
    crafted.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ModelFileError, match="is not a skops model file"):
        load_model(crafted)


def test_our_own_pipeline_loads(tmp_path):
    saved = tmp_path / "model.skops"
    saved.write_bytes(model_bytes(LogisticRegression().fit(X, y)))
    assert load_model(saved).predict(X).tolist() == y.tolist()


def logged(tmp_path, **options):
    folder = tmp_path / "logged"
    mlflow.sklearn.save_model(LogisticRegression().fit(X, y), folder, **options)
    return folder


def test_an_mlflow_model_stored_as_a_pickle_is_refused(tmp_path):
    folder = logged(tmp_path, serialization_format="cloudpickle")
    with pytest.raises(ModelFileError, match="stored as cloudpickle, not skops"):
        LoggedModel.load(folder)


def test_the_allow_list_is_ours_not_the_one_the_model_file_brings(tmp_path):
    """MLflow's own loader trusts the types the model's MLmodel lists: a crafted model
    that lists builtins.eval there is still refused here."""
    folder = logged(tmp_path, serialization_format="skops", skops_trusted_types=[])
    skops.io.dump([eval], folder / "model.skops")
    described = yaml.safe_load((folder / "MLmodel").read_text())
    described["flavors"]["sklearn"]["skops_trusted_types"] = ["builtins.eval"]
    (folder / "MLmodel").write_text(yaml.safe_dump(described))
    with pytest.raises(ModelFileError, match=r"builtins\.eval"):
        LoggedModel.load(folder)


def test_a_model_file_outside_its_folder_is_refused(tmp_path):
    folder = logged(tmp_path, serialization_format="skops", skops_trusted_types=[])
    described = yaml.safe_load((folder / "MLmodel").read_text())
    described["flavors"]["sklearn"]["pickled_model"] = "../elsewhere.skops"
    (folder / "MLmodel").write_text(yaml.safe_dump(described))
    with pytest.raises(ModelFileError, match="outside its folder"):
        LoggedModel.load(folder)


def test_the_logged_model_requires_the_library_of_every_type_it_may_hold():
    """A version served by `mlflow models serve` or another team's loader installs its
    requirements.txt: a type on the allow-list whose library is missing there would load
    here and fail there."""
    from importlib.metadata import packages_distributions

    from mlops_starter.storage import trusted_types
    from mlops_starter.training.tracking import model_libraries, model_requirements

    owners = packages_distributions()
    modules = {t.split(".")[0] for t in trusted_types()} | {"mlflow", "skops", "sklearn"}
    for module in modules:
        assert set(owners[module]) & set(model_libraries()), module
    assert all("==" in line and "pytest" not in line for line in model_requirements())


# skops's published advisories and the release that fixed each (skops docs/changes.rst).
# pip-audit (make audit-deps, in CI) checks every locked library against the live list;
# this keeps a downgrade below them from passing where that list cannot be reached.
SKOPS_ADVISORIES = {
    "CVE-2024-37065 (load(trusted=True) trusted anything)": "0.10",
    "CVE-2025-54412 (OperatorFuncNode ran code at load)": "0.12",
    "CVE-2025-54413 (MethodNode reached unexpected attributes)": "0.12",
    "CVE-2025-54886 (Card.get_model fell back to joblib)": "0.13",
}


@pytest.mark.parametrize("advisory", SKOPS_ADVISORIES)
def test_the_locked_skops_is_past_each_published_advisory(advisory):
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version("skops")) >= Version(SKOPS_ADVISORIES[advisory]), advisory


def test_padding_bytes_a_record_array_leaves_unwritten_change_no_byte_of_the_file():
    """sklearn's tree nodes are such an array: memory left over from before sat in its
    padding, and two fits of the same Balanced Random Forest gave two files."""
    nodes = np.dtype({"names": ["left", "flag"], "formats": ["<i8", "u1"], "itemsize": 16})
    arrays = []
    for leftover in (0x00, 0xAB):
        raw = np.full(3 * nodes.itemsize, leftover, np.uint8)
        array = raw.view(nodes)
        array["left"], array["flag"] = [1, 2, 3], [0, 1, 0]
        arrays.append(array)
    assert arrays[0].tobytes() != arrays[1].tobytes()
    assert model_bytes({"nodes": arrays[0]}) == model_bytes({"nodes": arrays[1]})
    np.testing.assert_array_equal(
        skops.io.loads(model_bytes({"nodes": arrays[1]}))["nodes"], arrays[1]
    )
