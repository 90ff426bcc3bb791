"""Reference data and checks for the FAQ exercise (notebook 02)."""

from __future__ import annotations

FAQ_QUESTIONS = [
    "What is a Large Language Model (LLM)?",
    "How do LLMs work?",
    "What are some common applications of LLMs?",
    "What is fine-tuning in the context of LLMs?",
    "How do LLMs handle context?",
    "What are some limitations of LLMs?",
    "How do LLMs generate text?",
    "What is the importance of prompt engineering in LLMs?",
    "How can LLMs be used in chatbots?",
    "What are some ethical considerations when using LLMs?",
]
SEPARATOR = "-" * 30


def expected_document(questions: list[str], answer_texts: list[str]) -> str:
    """The FAQ document as the exercise defines it, built independently of the notebook."""
    return "".join(f"{q.upper()}\n\n{a}\n\n{SEPARATOR}\n\n"
                   for q, a in zip(questions, answer_texts, strict=True))
