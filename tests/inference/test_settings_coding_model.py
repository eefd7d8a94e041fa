"""The coding role's default model follows the machine: the 1.5B where it is installed and >= 4 cores allow."""

import pytest

from engram_ls.inference import InferenceSettings, ModelSettings, models, settings

LARGE_INSTALLED = models.LARGE_CODER in models.available()


def cores(monkeypatch, n: int) -> None:
    monkeypatch.setattr(settings, "physical_cores", lambda: n)


def test_two_cores_keep_the_small_model(monkeypatch):
    cores(monkeypatch, 2)
    s = InferenceSettings()
    assert s.coding.path == models.DEFAULT_MODEL
    assert s.validate() == []


@pytest.mark.skipif(not LARGE_INSTALLED, reason="the coder-1-5b extra is not installed")
def test_four_cores_pick_the_large_coder_and_the_server_would_start_it(monkeypatch):
    cores(monkeypatch, 4)
    s = InferenceSettings()
    assert s.coding.path == models.LARGE_CODER
    assert s.research.path is None  # explanations keep the shipped default
    assert s.validate() == []
    # what the service starts: the assembled, verified 1.5B file (ready on this machine once the extra is used)
    assert models.resolve(s.coding.path).name == f"{models.LARGE_CODER}.gguf"


def test_four_cores_without_the_extra_fall_back(monkeypatch):
    cores(monkeypatch, 4)

    def missing(model):
        raise models.ModelUnavailable(f"{model.name}: not installed")

    monkeypatch.setattr(models, "_part_files", missing)
    assert InferenceSettings().coding.path == models.DEFAULT_MODEL


def test_a_configured_path_is_kept(monkeypatch):
    cores(monkeypatch, 8)
    s = InferenceSettings(coding=ModelSettings(path="smollm2-135m-instruct"))
    assert s.coding.path == "smollm2-135m-instruct"
