"""Repetition controls: one typed setting per role, carried by every generate frame to both backends."""

import json

import pytest

from engram_ls.inference import Inference, InferenceSettings, ModelSettings, SamplingSettings, Snippet
from engram_ls.inference.settings import ROLE_SAMPLING
from engram_ls.server.config import parse

from .conftest import stub_settings
from .test_openai_backend import StandIn, server  # noqa: F401  (the stand-in server fixture)
from .test_worker import frames_until_end, send, worker  # noqa: F401  (the stub worker fixture)


def test_each_role_gets_its_tuned_sampling_unless_set():
    s = InferenceSettings()
    assert s.coding.sampling == ROLE_SAMPLING["coding"] and s.research.sampling == ROLE_SAMPLING["research"]
    assert s.research.sampling is not ROLE_SAMPLING["research"]  # a copy: changing one config changes no other
    own = SamplingSettings(repeat_penalty=1.3)
    s = InferenceSettings(research=ModelSettings(sampling=own), coding=ModelSettings(pool_size=2))
    assert s.research.sampling is own and s.coding.sampling == ROLE_SAMPLING["coding"]


def test_invalid_sampling_names_the_field():
    s = InferenceSettings(research=ModelSettings(sampling=SamplingSettings(repeat_penalty=3.0, dry_allowed_length=0.5)))
    problems = "\n".join(s.validate())
    assert "research.sampling.repeat_penalty: must be a number in 1.0..2.0 (got 3.0)" in problems
    assert "research.sampling.dry_allowed_length: must be an integer in 1..64" in problems


def test_server_config_sets_sampling_per_role_and_resets_a_bad_value_to_the_role_default():
    config, warnings = parse({"models": {"research": {"sampling": {"repeatPenalty": 1.2, "dryMultiplier": 9}},
                                         "coding": {"sampling": {"presencePenalty": 0.5}}}})
    assert config.inference.research.sampling.repeat_penalty == 1.2
    assert config.inference.research.sampling.dry_multiplier == ROLE_SAMPLING["research"].dry_multiplier
    assert config.inference.coding.sampling.presence_penalty == 0.5
    assert any("research.sampling.dry_multiplier" in w for w in warnings)
    assert config.inference.validate() == []


def test_the_worker_refuses_unknown_or_out_of_range_sampling(worker):  # noqa: F811
    from engram_ls.inference.protocol import read_frame

    read_frame(worker.stdout)
    base = {"type": "generate", "mode": "prompt", "prompt": "x", "max_tokens": 1}
    send(worker, {**base, "id": "a", "sampling": {"repeat_penality": 1.1}})
    error = frames_until_end(worker, "a")[-1]
    assert error["code"] == "bad_request" and "repeat_penality" in error["message"]
    send(worker, {**base, "id": "b", "sampling": {"repeat_penalty": 7}})
    assert "sampling.repeat_penalty" in frames_until_end(worker, "b")[-1]["message"]
    send(worker, {**base, "id": "c", "sampling": SamplingSettings(dry_multiplier=0.8).frame()})
    assert frames_until_end(worker, "c")[-1]["type"] == "done"


async def test_every_frame_carries_its_roles_sampling(tmp_path, monkeypatch):
    trace = tmp_path / "frames.jsonl"
    monkeypatch.setattr("engram_ls.inference.pool.TRACE_FRAMES", str(trace))
    research = SamplingSettings(repeat_penalty=1.15, dry_multiplier=0.8)
    inf = Inference(stub_settings(research=ModelSettings(sampling=research)))
    await inf.start()
    try:
        await inf.ask("explain x", role="research", max_tokens=2)
        await inf.complete("def f(", ")", max_tokens=2)
        await inf.ask("explain x", role="research", max_tokens=2, sampling=SamplingSettings())
    finally:
        await inf.close()
    frames = [f for f in map(json.loads, trace.read_text().splitlines()) if f["type"] == "generate"]
    assert [f["sampling"] for f in frames] == [research.frame(), inf.settings.coding.sampling.frame(),
                                               SamplingSettings().frame()]


async def test_the_openai_payload_carries_the_controls(server):  # noqa: F811
    on = SamplingSettings(repeat_penalty=1.1, presence_penalty=0.3, dry_multiplier=0.8, dry_allowed_length=3)
    inf = Inference(stub_settings(backend="openai", url=server, research=ModelSettings(sampling=on),
                                  coding=ModelSettings(sampling=SamplingSettings())))
    await inf.start()
    try:
        await inf.ask("explain", [Snippet("a.py", 1, 2, "x")], role="research", max_tokens=2)
        await inf.complete("def f(", ")", max_tokens=2)
    finally:
        await inf.close()
    chat = next(b for p, b, _ in StandIn.seen if p == "/v1/chat/completions")
    fim = next(b for p, b, _ in StandIn.seen if p == "/v1/completions")
    assert {k: chat[k] for k in ("repeat_penalty", "presence_penalty", "frequency_penalty", "dry_multiplier",
                                 "dry_base", "dry_allowed_length", "dry_penalty_last_n")} == {
        "repeat_penalty": 1.1, "presence_penalty": 0.3, "frequency_penalty": 0.0, "dry_multiplier": 0.8,
        "dry_base": 1.75, "dry_allowed_length": 3, "dry_penalty_last_n": -1}
    # neutral controls send only the standard OpenAI fields, so a strict server accepts them
    assert fim["presence_penalty"] == 0.0 and "repeat_penalty" not in fim and "dry_multiplier" not in fim


@pytest.mark.model
def test_penalties_and_dry_reach_llama_cpp_and_the_research_default_repeats_less():
    """The shipped model in-process on an explain prompt that greedy decoding answers in circles: the research
    role's default repeats fewer word 4-grams than neutral controls, and DRY changes the text too (so every
    control reaches the sampler; with the arguments dropped, all three answers are the same)."""
    from bench.explain_eval.scoring import repeated_ngram_share
    from engram_ls.inference import models, prompts
    from engram_ls.inference.backends import LlamaBackend

    backend = LlamaBackend(str(models.model_path()), n_ctx=2048, threads=1, cache_mb=0)
    source = (EVAL / "tallyho/ledger.py").read_text().splitlines()
    first = next(i for i, line in enumerate(source) if line.startswith("def reconcile"))
    snippet = Snippet("tallyho/ledger.py", first + 1, first + 15, "\n".join(source[first:first + 15]))
    messages, _ = prompts.chat_messages("How does reconcile decide that a journal entry matches a bank statement "
                                        "entry?", [snippet], n_ctx=2048, max_tokens=64, count=backend.count)

    def answer(sampling):
        return "".join(backend.stream_chat(messages, 64, 0.0, [], lambda: False, sampling))

    neutral = answer(SamplingSettings())
    tuned = answer(ROLE_SAMPLING["research"])
    assert repeated_ngram_share(tuned) < repeated_ngram_share(neutral), (neutral, tuned)
    assert answer(SamplingSettings(dry_multiplier=0.8)) != neutral


EVAL = __import__("pathlib").Path(__file__).parents[2] / "bench" / "explain_eval"
