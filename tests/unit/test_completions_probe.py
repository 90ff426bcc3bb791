"""completions_served(): one call with a list of prompts; True only on an answer, one printed line
for an answer, a refusal, and a question left open (a rate limit, no answer)."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai

from helpers import completions_served

ANSWER = {"id": "c", "object": "text_completion", "created": 0, "model": "m",
          "choices": [{"index": i, "text": " x", "finish_reason": "length", "logprobs": None}
                      for i in range(2)]}


def probe(respond) -> tuple[bool, list[dict]]:
    """completions_served() against a transport that answers with `respond(request)`; and the
    requests it saw."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, **json.loads(request.content)})
        return respond(request)

    async def ask():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = openai.AsyncOpenAI(base_url="http://backend/v1", api_key="k", max_retries=0,
                                        http_client=http)
            return await completions_served(client, "m")

    return asyncio.run(ask()), seen


def test_an_answer_means_served_and_the_question_is_a_list(capsys):
    served, seen = probe(lambda request: httpx.Response(200, json=ANSWER))
    assert served is True
    [request] = seen
    assert request["path"] == "/v1/completions" and request["model"] == "m"
    assert isinstance(request["prompt"], list) and len(request["prompt"]) == 2 and request["max_tokens"] == 1
    assert capsys.readouterr().out == ("✔ /v1/completions serves this model: a group of prompts can go as "
                                       "one call\n")


def test_a_refusal_means_not_served_for_this_model(capsys):
    for status in (400, 404, 405, 422):
        served, _ = probe(lambda request, status=status: httpx.Response(status, json={"error": "no"}))
        assert served is False
        out = capsys.readouterr().out
        assert out == (f"✗ /v1/completions is refused for this model (HTTP {status}): a group of prompts "
                       "goes as one chat request per prompt\n"), out


def test_a_rate_limit_or_no_answer_leaves_it_open(capsys):
    served, _ = probe(lambda request: httpx.Response(429, headers={"Retry-After": "7"}, json={}))
    out = capsys.readouterr().out
    assert served is False and out.startswith("? Could not tell whether /v1/completions serves this model")
    assert "HTTP 429" in out and "7 s" in out and out.count("\n") == 1, out

    def unreachable(request):
        raise httpx.ConnectError("connection refused")

    served, _ = probe(unreachable)
    out = capsys.readouterr().out
    assert served is False and out.startswith("? Could not tell") and "No model server answered" in out, out
