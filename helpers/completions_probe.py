"""Does a backend serve /v1/completions (a list of prompts in one call) for a model? One short call says."""

from __future__ import annotations

from .friendly_errors import explain

REFUSED = (400, 404, 405, 422)  # the endpoint, or this model on it, is not served


async def completions_served(client, model: str) -> bool:
    """Ask `client` (an `openai.AsyncOpenAI`) once for two one-token continuations in one call, and
    print one line saying what the backend allows. True only if it answered: a refusal says no; a
    rate limit, a server error or no answer leaves the question open (False, and the line says so)."""
    try:
        await client.completions.create(model=model, max_tokens=1,  # a list, as every group is
                                        prompt=["The capital of Utah is", "The capital of Ohio is"])
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        chat = "a group of prompts goes as one chat request per prompt"
        if status in REFUSED:
            print(f"✗ /v1/completions is refused for this model (HTTP {status}): {chat}")
        else:
            print(f"? Could not tell whether /v1/completions serves this model: {chat} (re-run this "
                  f"cell to ask again). {explain(exc)}")
        return False
    print("✔ /v1/completions serves this model: a group of prompts can go as one call")
    return True
