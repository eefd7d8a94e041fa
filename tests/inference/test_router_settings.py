from engram_ls.inference import Inference, InferenceSettings, ModelSettings, classify
from engram_ls.inference import settings as settings_module


def test_router_rules_and_confidence():
    assert classify("Explain how the cache works") [0] == "research"
    assert classify("Write a function that parses dates")[0] == "coding"
    # two research words (why, explain) against one coding word (refactor): research, margin 1 of 3
    assert classify("Why does refactor explain?") == ("research", 1 / 3)
    assert classify("fix the bug and write a test, then explain") == ("coding", 3 / 5)
    assert classify("hmm?") == ("research", 0.0)
    assert classify("hmm") == ("coding", 0.0)


def test_default_settings_are_valid():
    assert InferenceSettings().validate() == []


def test_invalid_settings_name_each_field():
    s = InferenceSettings(backend="gpu", coding=ModelSettings(pool_size=0, path="/nope.gguf"), heartbeat_s=-1)
    problems = "\n".join(s.validate())
    assert "backend" in problems and "coding.pool_size" in problems and "coding.path" in problems
    assert "heartbeat_s" in problems
    assert "url: required" in "\n".join(InferenceSettings(backend="openai").validate())


def test_threads_split_the_cores(monkeypatch):
    monkeypatch.setattr(settings_module, "physical_cores", lambda: 8)
    s = InferenceSettings(coding=ModelSettings(pool_size=1), research=ModelSettings(pool_size=1))
    assert s.threads_for("coding") == 4 and s.threads_for("research") == 4
    s = InferenceSettings(coding=ModelSettings(pool_size=3), research=ModelSettings(pool_size=1))
    assert s.threads_for("coding") == 2
    monkeypatch.setattr(settings_module, "physical_cores", lambda: 1)
    assert s.threads_for("coding") == 1  # never zero threads
    assert InferenceSettings(coding=ModelSettings(threads=3)).threads_for("coding") == 3


def test_the_coding_worker_reads_prompts_with_every_core_and_generates_with_its_share(monkeypatch):
    """A keystroke's latency is mostly the coding worker's prompt reading; research keeps its share (both on every
    core at once was 2.7x slower on 2 cores), and an explicit ``threads`` is taken as given."""
    monkeypatch.setattr(settings_module, "physical_cores", lambda: 8)
    s = InferenceSettings(coding=ModelSettings(pool_size=1), research=ModelSettings(pool_size=1))
    assert (s.threads_for("coding"), s.batch_threads_for("coding")) == (4, 8)
    assert (s.threads_for("research"), s.batch_threads_for("research")) == (4, 4)
    s = InferenceSettings(coding=ModelSettings(pool_size=2), research=ModelSettings(pool_size=1))
    assert s.batch_threads_for("coding") == 4  # two coding workers may read at once
    s = InferenceSettings(coding=ModelSettings(threads=3))
    assert s.batch_threads_for("coding") == 3
    args = Inference(InferenceSettings(backend="stub"))._worker_args("coding", "")
    assert args[args.index("--batch-threads") + 1] == str(InferenceSettings().batch_threads_for("coding"))


def test_a_shipped_model_name_is_a_valid_path():
    """The README lets `models.<role>.path` name a shipped model; validation must not call it a missing file."""
    s = InferenceSettings(research=ModelSettings(path="smollm2-135m-instruct"),
                          coding=ModelSettings(path="qwen2.5-coder-1.5b-instruct"))
    assert s.validate() == []
    assert "shipped:" in "\n".join(InferenceSettings(coding=ModelSettings(path="nope-7b")).validate())
