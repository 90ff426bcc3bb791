"""A zip inside the submissions folder is opened like an LMS zip given directly, and every file
that is not taken, in a zip or not, is still reported."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nbformat

from llm_kit.grading.collect import collect

AID = "02_streaming_and_batching"
NOTEBOOK = nbformat.writes(nbformat.v4.new_notebook()).encode()
OLD, NEW = (2024, 1, 1, 9, 0, 0), (2024, 1, 2, 9, 0, 0)


def _zip(entries: dict[str, bytes], when: tuple = NEW) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return buffer.getvalue()


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _taken(found) -> dict[str, str]:
    return {s.student: s.shown for s in found.taken}


def _skipped(found) -> dict[str, str]:
    return {s.shown: s.reason for s in found.skipped}


def test_zips_next_to_other_submissions_are_opened(tmp_path):
    subs = tmp_path / "subs"
    _write(subs, {
        f"ada/{AID}.ipynb": NOTEBOOK,
        # the LMS download dropped next to them: Canvas names, a student zip inside it
        "canvas.zip": _zip({f"bob_11_22_{AID}.ipynb": NOTEBOOK,
                            "cy_33_44_work.zip": _zip({f"{AID}.ipynb": NOTEBOOK}),
                            "readme.txt": b"LMS export"}),
        "dee.zip": _zip({f"{AID} (1).ipynb": NOTEBOOK}),  # files name no student: the zip does
        f"eve/{AID}.ipynb": NOTEBOOK,
        "eve/work.zip": _zip({f"{AID}.ipynb": NOTEBOOK, "notes.txt": b"x"}),  # a folder of eve's
        "broken.zip": b"not a zip at all",
    })
    (subs / "eve" / f"{AID}.ipynb").touch()  # newer than the zip's copy (2024)
    found = collect(subs, [AID])
    try:
        assert _taken(found) == {
            "ada": f"{subs}/ada/{AID}.ipynb",
            "bob_11": f"{subs}/canvas.zip/bob_11_22_{AID}.ipynb",
            "cy_33": f"{subs}/canvas.zip/cy_33_44_work/{AID}.ipynb",
            "dee": f"{subs}/dee.zip/{AID} (1).ipynb",
            "eve": f"{subs}/eve/{AID}.ipynb",
        }
        skipped = _skipped(found)
        assert skipped[f"{subs}/canvas.zip/readme.txt"] == "not a notebook (.ipynb)"
        assert skipped[f"{subs}/eve/work.zip/notes.txt"] == "not a notebook (.ipynb)"
        assert skipped[f"{subs}/eve/work.zip/{AID}.ipynb"].startswith(f"eve has a newer file for {AID}")
        assert skipped[f"{subs}/broken.zip"].startswith("not a readable zip")
        assert len(skipped) == 4, skipped  # the zips themselves are opened, not reported
        for submission in found.taken:  # what was unpacked is readable until the grading is over
            assert nbformat.read(submission.path, as_version=4).cells == []
    finally:
        found.workdir.cleanup()
    assert sorted(p.name for p in subs.iterdir()) == ["ada", "broken.zip", "canvas.zip", "dee.zip", "eve"]


def test_a_class_zip_in_the_folder_reads_like_one_given_directly(tmp_path):
    class_zip = _zip({f"submissions/fay/{AID}.ipynb": NOTEBOOK, f"submissions/gus/{AID}-2.ipynb": NOTEBOOK,
                      f"submissions/gus/{AID}.ipynb": NOTEBOOK, "__MACOSX/submissions/._fay": b""})
    (tmp_path / "download.zip").write_bytes(class_zip)
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "download.zip").write_bytes(class_zip)
    given, dropped = collect(tmp_path / "download.zip", [AID]), collect(tmp_path / "subs", [AID])
    try:
        assert sorted(_taken(given)) == sorted(_taken(dropped)) == ["fay", "gus"]
        as_given = {shown.replace("download.zip", "") for shown in _skipped(given)}
        as_dropped = {shown.replace(f"{tmp_path / 'subs'}/download.zip", "") for shown in _skipped(dropped)}
        assert as_given == as_dropped and len(as_given) == 2, (as_given, as_dropped)
    finally:
        given.workdir.cleanup()
        dropped.workdir.cleanup()


def test_a_folder_without_zips_unpacks_nothing(tmp_path):
    _write(tmp_path, {f"ada/{AID}.ipynb": NOTEBOOK, "ada/notes.txt": b"x"})
    found = collect(tmp_path, [AID])
    assert found.workdir is None
    assert _taken(found) == {"ada": f"{tmp_path}/ada/{AID}.ipynb"}
    assert _skipped(found) == {f"{tmp_path}/ada/notes.txt": "not a notebook (.ipynb)"}
