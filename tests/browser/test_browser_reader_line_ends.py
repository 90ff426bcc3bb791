"""Notebook 10's JavaScript reader (`readStream`, in its READER_JS cell), run in Debian's chromium
against a `fetch` that delivers a server-sent event stream in chosen pieces: SSE lines may end
with \\r\\n, \\r or \\n, and a network read may end anywhere, between the \\r and the \\n too."""

from __future__ import annotations

import nbformat
import pytest

from browser_support import chromium
from support import REPO

NOTEBOOK = REPO / "solutions" / "10_streams_to_the_browser.ipynb"
ANSWER = 'data: {"delta": "a"}EOLEOLdata: {"delta": "b"}EOLEOLevent: doneEOLdata: {}EOLEOL'
READS = {
    "crlf split between reads": ['data: {"delta": "a"}\r\n\r', '\ndata: {"delta": "b"}\r\n\r\n',
                                 "event: done\r\ndata: {}\r", "\n\r", "\n"],
    "cr only": [ANSWER.replace("EOL", "\r")],
    "lf, a byte a read": list(ANSWER.replace("EOL", "\n")),
    "crlf, a byte a read": list(ANSWER.replace("EOL", "\r\n")),
}
HARNESS = """async ([reads]) => {
  window.fetch = async () => new Response(new ReadableStream({
    start(c) { const enc = new TextEncoder(); for (const r of reads) c.enqueue(enc.encode(r)); c.close(); }
  }), {status: 200});
  const texts = [];
  try { return {texts, last: await readStream("/answer", {}, (t) => texts.push(t))}; }
  catch (e) { return {texts, error: String(e)}; }
}"""


def reader_js() -> str:
    """The READER_JS string as the notebook writes it."""
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        if 'READER_JS = r"""' in cell.source:
            return cell.source.split('READER_JS = r"""', 1)[1].split('"""', 1)[0]
    raise LookupError("notebook 10 has no READER_JS cell")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium")) as page:
        page.goto("about:blank")
        page.add_script_tag(content=reader_js())
        yield page


@pytest.mark.parametrize("case", list(READS))
def test_every_line_end_ends_an_event_once(page, case):
    got = page.evaluate(HARNESS, [READS[case]])
    assert got == {"texts": ["a", "b"], "last": {}}, got
