"""Where the service's API key comes from, and what refuses an unusable one."""

import pytest

from mlops_starter.errors import ConfigError
from mlops_starter.serving.auth import KEY_ENV, KEY_FILE_ENV, api_key

KEY = "k3y-0f-at-least-16-chars"


def test_no_key_leaves_an_optional_service_open_and_stops_a_required_one():
    assert api_key("optional", {}) is None
    with pytest.raises(ConfigError, match=f"serve.auth is 'required'.*{KEY_ENV}"):
        api_key("required", {})


def test_the_key_comes_from_the_variable_or_from_the_file_it_names(tmp_path):
    assert api_key("required", {KEY_ENV: KEY}) == KEY
    secret = tmp_path / "api_key"
    secret.write_text(KEY + "\n")  # secret files usually end in a newline
    assert api_key("optional", {KEY_FILE_ENV: str(secret)}) == KEY


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({KEY_ENV: "short"}, KEY_ENV),
        ({KEY_ENV: "sixteen chars with spaces"}, KEY_ENV),
        ({KEY_ENV: "nøn-ascii-key-of-some-length"}, KEY_ENV),
        ({KEY_ENV: KEY, KEY_FILE_ENV: "/x"}, "set one of them"),
        ({KEY_FILE_ENV: "/nowhere/api_key"}, "/nowhere/api_key"),
    ],
)
def test_an_unusable_key_is_refused_by_where_it_came_from_without_showing_it(environ, named):
    with pytest.raises(ConfigError) as refused:
        api_key("optional", environ)
    assert named in str(refused.value)
    assert environ.get(KEY_ENV, "never") not in str(refused.value)
