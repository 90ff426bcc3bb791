"""What a client's hang-up did, in one sentence that claims no more than the evidence shows: the
endpoint's own record (was it cancelled mid-answer?) and the model server's watches (did its
token counter stand still after the hang-up?). A fast backend (a NIM on a GPU) may finish an
answer before the client hangs up; then the sentence says there was nothing to cancel."""

from __future__ import annotations

from typing import Any


def hang_up_outcome(cancelled: bool, after: Any, connected: Any = None) -> str:
    """One sentence on what a hang-up did.

    `cancelled`: the endpoint noted that it was stopped before the answer ended (its own record).
    `after`: `watch_server(...)` after the client hung up; `connected` (optional): the watch
    while the client was connected and not reading. Only their public fields are read
    (`generating`, `reported`, `caveat`, `tokens_generated`, `seconds`).
    """
    if not cancelled:
        still = (" (the server's token counter had already stood still while the client was "
                 "connected)" if connected is not None and connected.generating is False else "")
        return ("Nothing to cancel: the answer was complete before the client hung up" + still +
                ". To see a hang-up stop the model's work, ask for an answer that outlasts the "
                "watch.")
    during = ""
    if connected is not None and connected.generating and connected.tokens_generated is not None:
        during = (f"; while the client was connected and not reading, the model generated "
                  f"{connected.tokens_generated:.0f} tokens in {connected.seconds:.1f} s")
    opening = "The hang-up cancelled the endpoint mid-answer" + during
    if not after.reported:
        return (f"{opening}. This server does not report what it is doing (the hosted catalog "
                "keeps that to itself): the endpoint's own record is the only evidence.")
    if after.caveat:
        return f"{opening}; whether the model server stopped, its readings cannot say: {after.caveat}."
    if after.generating is False:
        return (f"{opening}; after it, the model server's token counter stood still: the "
                "cancellation reached the model server and its work stopped.")
    return (f"{opening}, yet the model server went on generating after it: the cancellation "
            "did not reach the model server.")
