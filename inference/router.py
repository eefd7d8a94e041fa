"""Routing: which model role serves a task, and the two multi-model patterns (pipeline, collaborative)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .service import Answer, Inference
    from .prompts import Snippet

_RESEARCH = re.compile(
    r"\b(explain|why|how (?:does|do|is|are)|what (?:is|are|does)|describe|summari[sz]e|overview|architecture|"
    r"understand|compare|where (?:is|are)|which|purpose|meaning|document|plan|design|trade-?offs?)\b", re.I)
_CODING = re.compile(
    r"\b(write|implement|refactor|fix|add|generate|create|rename|convert|optimi[sz]e|rewrite|complete|test|"
    r"function|method|class|snippet|code|patch|bug|edit|change)\b", re.I)


def classify(text: str) -> tuple[str, float]:
    """``(role, confidence)`` by rules: explanation words -> research, making words -> coding.

    Confidence is the margin between the two scores in 0..1; a tie goes to research for questions and to coding
    otherwise, with confidence 0."""
    research = len(_RESEARCH.findall(text))
    coding = len(_CODING.findall(text))
    if research == coding:
        return ("research" if text.strip().endswith("?") else "coding"), 0.0
    role = "research" if research > coding else "coding"
    return role, abs(research - coding) / (research + coding)


async def pipeline(inference: "Inference", task: str, snippets: Sequence["Snippet"], *,
                   max_tokens: int = 384) -> tuple["Answer", "Answer"]:
    """Research plans, then coding writes: returns (plan, result)."""
    plan = await inference.ask(f"Plan, step by step, how to: {task}", snippets, role="research",
                               max_tokens=max_tokens)
    result = await inference.ask(f"Task: {task}\n\nPlan:\n{plan.text}\n\nWrite the code.", snippets, role="coding",
                                 max_tokens=max_tokens)
    return plan, result


async def collaborative(inference: "Inference", questions: Sequence[tuple[str, str | None]],
                        snippets: Sequence["Snippet"], *, max_tokens: int = 256) -> list["Answer"]:
    """Fans (question, role) pairs out in parallel over both pools; answers come back in submission order."""
    return list(await asyncio.gather(*(inference.ask(q, snippets, role=r, max_tokens=max_tokens)
                                       for q, r in questions)))
