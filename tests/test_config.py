import copy

import pytest
import yaml

from lic import config, paths


@pytest.fixture
def raw():
    return yaml.safe_load(paths.PARAMS.read_text())


@pytest.mark.parametrize("profile", config.PROFILES)
def test_params_yaml_resolves_for_both_profiles(raw, profile):
    params = config.resolve(raw, profile)
    assert params["profile"] == profile
    assert "default" not in params["data"] and "paper" not in params["data"]
    assert params["data"]["train"] in raw["data"]["datasets"]
    assert set(params["data"]["eval"]) <= set(raw["data"]["datasets"])


def test_default_profile_needs_no_network(raw):
    from lic.data import registry

    params = config.resolve(raw, "default")
    used = [params["data"]["train"], *params["data"]["eval"]]
    assert not any(registry.get(n).needs_network for n in used)


def test_paper_profile_uses_the_papers_datasets(raw):
    params = config.resolve(raw, "paper")
    assert params["data"]["train"] == "div2k-train"
    assert params["data"]["eval"] == ["kodak", "clic2020-professional-valid", "tecnick"]


def test_the_switch_selects_the_block(raw):
    raw["profile"] = "paper"
    assert config.resolve(raw)["data"]["train"] == "div2k-train"


def test_unknown_key_fails_loudly_with_its_path(raw):
    bad = copy.deepcopy(raw)
    bad["data"]["default"]["evall"] = ["sample"]
    with pytest.raises(config.ConfigError, match=r"params\.data\.default\.evall: unknown key"):
        config.resolve(bad)
    bad = copy.deepcopy(raw)
    bad["trian"] = {}
    with pytest.raises(config.ConfigError, match=r"params\.trian: unknown key"):
        config.resolve(bad)


def test_missing_profile_block_and_bad_profile(raw):
    bad = copy.deepcopy(raw)
    del bad["data"]["paper"]
    with pytest.raises(config.ConfigError, match="missing the block for profile 'paper'"):
        config.resolve(bad)
    bad = copy.deepcopy(raw)
    bad["profile"] = "gpu"
    with pytest.raises(config.ConfigError, match="'gpu' is not a profile"):
        config.resolve(bad)


@pytest.mark.parametrize("path,value,expected", [
    (("data", "download", "retries"), "3", "expected int"),
    (("data", "download", "retries"), True, "expected int"),
    (("data", "download", "timeout_s"), [1], "expected int or float"),
    (("data", "datasets"), "sample", "expected a list"),
])
def test_type_errors(raw, path, value, expected):
    bad = copy.deepcopy(raw)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(config.ConfigError, match=expected):
        config.resolve(bad)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("profile: [\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load_params(tmp_path / "p.yaml")
