from engram_ls.inference import InferenceSettings, ModelSettings, classify


def test_router_rules_and_confidence():
    assert classify("Explain how the cache works") [0] == "research"
    assert classify("Write a function that parses dates")[0] == "coding"
    role, conf = classify("Why does refactor explain?")
    assert 0.0 <= conf <= 1.0
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


def test_threads_split_the_cores():
    s = InferenceSettings(coding=ModelSettings(pool_size=1), research=ModelSettings(pool_size=1))
    assert s.threads_for("coding") >= 1
    assert InferenceSettings(coding=ModelSettings(threads=3)).threads_for("coding") == 3


def test_a_shipped_model_name_is_a_valid_path():
    """The README lets `models.<role>.path` name a shipped model; validation must not call it a missing file."""
    s = InferenceSettings(research=ModelSettings(path="smollm2-135m-instruct"),
                          coding=ModelSettings(path="qwen2.5-coder-1.5b-instruct"))
    assert s.validate() == []
    assert "shipped:" in "\n".join(InferenceSettings(coding=ModelSettings(path="nope-7b")).validate())
