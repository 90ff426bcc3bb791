"""Sentences of notebooks 1 and 3 that must hold on every backend, checked without a model:
notebook 1 names the same default backend as the README, and notebook 3's cache report prints
"not reported" where a backend sends no cache figures (the hosted catalog) instead of failing or
claiming a cache."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from openai.types import CompletionUsage

from helpers import bar_chart, show

from support import REPO


def cells(name: str) -> list[dict]:
    return json.loads((REPO / "solutions" / f"{name}.ipynb").read_text())["cells"]


def default_rows(markdown: str) -> list[str]:
    """The rows of the markdown tables in `markdown` that call their backend the default."""
    return [row for row in markdown.splitlines() if row.startswith("|") and "default" in row]


def test_notebook_1_and_the_readme_name_the_offline_server_the_default():
    table = next("".join(c["source"]) for c in cells("01_setup_and_first_call")
                 if "| backend |" in "".join(c["source"]))
    readme = (REPO / "README.md").read_text().split("## Three backends", 1)[1].split("\n## ", 1)[0]
    for where, text in (("notebook 1", table), ("README", readme)):
        rows = default_rows(text)
        assert len(rows) == 1 and "offline" in rows[0].lower(), f"{where}: {rows}"
    assert "(the default)" not in table.split("**NIM**", 1)[1].split("\n", 1)[0]


class FakeClient:
    """The openai client's `chat.completions.create`, answering with the usage it was given."""

    def __init__(self, usage):
        answer = SimpleNamespace(usage=usage)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=lambda **_: answer))


def run_time_saved_cell(usage_then, usage_now, capsys) -> str:
    source = next("".join(c["source"]) for c in cells("03_anatomy_of_a_stream")
                  if "time-saved" in c["metadata"].get("tags", []))
    namespace = {"client": FakeClient(usage_now), "model": "m", "counting": [],
                 "response": SimpleNamespace(usage=usage_then), "show": show, "bar_chart": bar_chart,
                 "streamed": SimpleNamespace(ttft_s=0.05, total_s=1.0)}
    exec(compile("import time\n" + source.rstrip().rstrip(";"), "time-saved", "exec"), namespace)
    return capsys.readouterr().out


def test_notebook_3_prints_the_cache_as_reported_and_says_when_it_is_not(capsys):
    bare = CompletionUsage(prompt_tokens=61, completion_tokens=30, total_tokens=91)  # no details
    text = run_time_saved_cell(bare, None, capsys)
    assert re.findall(r"read from its cache (?:in section 1|now): (.+)$", text, re.M) == [
        "not reported", "not reported"], text
    reported = CompletionUsage(prompt_tokens=61, completion_tokens=30, total_tokens=91,
                               prompt_tokens_details={"cached_tokens": 60})
    text = run_time_saved_cell(bare, reported, capsys)
    assert "read from its cache now: 60 of 61" in text and "in section 1: not reported" in text
    assert "the reader starts" in text
