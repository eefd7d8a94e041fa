"""``engram-ls ask PATH QUESTION``: retrieve from the workspace's engrams, route, stream the answer, cite sources.

Grounded or silent: when no retrieved chunk supports the question (``grounding.assess``), the model is not started
at all; the command says so and lists the nearest hits. An answer's citations must name snippets it was given
(the others are listed as such), and its code blocks must parse: a failing answer is regenerated once with the
parser's complaint, then declared invalid. An answer the token limit cuts ends at its last complete sentence (the
stream holds back the sentence being written) and says where it was cut.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace

from engram_ls.inference import Inference, InferenceError, InferenceSettings, Snippet, classify
from engram_ls.inference.pool import reap_workers

from . import code_check, grounding, sentences
from .cli import EXIT_FAILED, CliError, SigintWatcher, _open, ensure_index, exit_interrupted


def _settings(args) -> InferenceSettings:
    settings = InferenceSettings(backend=args.backend or "llama", url=args.url)
    if args.model_path is not None:
        settings.coding.path = settings.research.path = str(args.model_path)
    if getattr(args, "stub_delay_ms", 0):
        settings.stub_delay_ms = args.stub_delay_ms
    return settings


def _first_line(text: str) -> str:
    return next((l.strip() for l in text.splitlines() if l.strip()), "")[:80]


def _default_language(snippets: list[Snippet]) -> str | None:
    """The language of untagged code blocks: the snippets' language when they all share one."""
    languages = {code_check.language_of(s.path) for s in snippets}
    return languages.pop() if len(languages) == 1 else None


_shown = {"any": False}  # whether part of an answer reached the terminal (an error then starts a new line)


async def _answer(args, snippets: list[Snippet], role: str):
    """The answer, its code problems after at most one regeneration, and the number of model calls."""
    out = sys.stdout
    streamed = not args.json

    def show(piece: str) -> None:
        _shown["any"] = True
        out.write(piece)
        out.flush()

    language = _default_language(snippets)
    check_code = role == "coding"  # explanations quote fragments; code answers must parse
    async with Inference(_settings(args)) as inference:
        question, calls = args.question, 0
        while True:
            gate = sentences.SentenceGate(show) if streamed else None  # a cut answer shows no half sentence
            answer = await inference.ask(question, snippets, role=role, max_tokens=args.max_tokens,
                                         on_token=gate.feed if gate else None)
            calls += 1
            problems = code_check.answer_problems(answer.text, language) if check_code else []
            text, cut = sentences.finish(answer.text, answer.finish, answer.usage.get("completion_tokens", 0))
            if gate:
                gate.close(cut is not None)
            if not problems or calls == 2:
                return replace(answer, text=text), cut, problems, calls
            if streamed:
                show(f"\n\n[engram-ls: the code above does not parse ({problems[0]}); asking the model once more]"
                     f"\n\n")
            question = f"{args.question}\n\n{code_check.RETRY_NOTE.format(problem=problems[0])}"


def _run_interruptible(coro):
    """``asyncio.run(coro)``, where the first Ctrl-C cancels it (the pools close and stop their workers, which
    never see the signal) and raises KeyboardInterrupt; a second Ctrl-C exits at once."""
    state: dict = {}

    async def main():
        state["loop"], state["task"] = asyncio.get_running_loop(), asyncio.current_task()
        try:
            return await coro
        finally:
            await reap_workers()

    def on_interrupt(count: int) -> None:
        if count > 1 or "task" not in state:
            exit_interrupted()
        state["interrupted"] = True
        state["loop"].call_soon_threadsafe(state["task"].cancel)

    try:
        with SigintWatcher(on_interrupt):
            return asyncio.run(main())
    except asyncio.CancelledError:
        if state.get("interrupted"):
            raise KeyboardInterrupt from None
        raise


def _silent(args, found: grounding.Grounding, role: str, files: int) -> int:
    message = found.message()
    if files == 0:
        message += " The workspace has no indexed files."
    if args.json:
        print(json.dumps({"answer": "", "grounded": False, "message": message, "role": role, "model": None,
                          "model_calls": 0, "citations": [],
                          "nearest": [{"path": h.path, "start_line": h.start_line, "end_line": h.end_line,
                                       "score": h.score} for h in found.nearest]}))
        return 0
    print(message)
    if found.nearest:
        print("\nNearest hits (weak matches, not an answer):")
        for h in found.nearest:
            print(f"  {h.path}:{h.start_line}-{h.end_line}  {_first_line(h.text)}")
    return 0


def run_ask(args) -> int:
    engram = _open(args.path)
    summary = ensure_index(engram)
    hits = engram.search(args.question, k=args.k)
    role = args.role or classify(args.question)[0]
    found = grounding.assess(args.question, hits)
    if not found.grounded:
        return _silent(args, found, role, summary.files)
    snippets = [Snippet(h.path, h.start_line, h.end_line, h.text) for h in hits]
    try:
        answer, cut, problems, calls = _run_interruptible(_answer(args, snippets, role))
    except InferenceError as e:
        if _shown["any"]:
            print(flush=True)
        raise CliError(str(e), EXIT_FAILED) from None
    given = answer.cited or []
    checked = grounding.check_citations(answer.text, given)
    if args.json:
        print(json.dumps({
            "answer": checked.text, "role": answer.role, "model": answer.model, "usage": answer.usage,
            "grounded": True, "model_calls": calls, "finish": answer.finish, "cut": cut,
            "citations": [{"path": s.path, "start_line": s.start_line, "end_line": s.end_line} for s in given],
            "invented_citations": checked.invented, "code_problems": [str(p) for p in problems],
        }))
        return 0
    if cut:
        print(f"\n{cut}")
    if problems:
        print(f"\n\n[engram-ls: no valid code was produced: {problems[0]}. Do not use the code above.]")
    print("\n\nSources:")
    for s in given:
        print(f"  {s.path}:{s.start_line}-{s.end_line}")
    if checked.invented:
        print("Not among the given snippets (ignore these citations): " + ", ".join(checked.invented))
    return 0
