"""hyperctl's pull progress: the screen a terminal ends up showing, and the quiet mode."""

from __future__ import annotations

import io
import re

from hypercontainer.cli.progress import ProgressRenderer, bar


def screen(output: str) -> list[str]:
    """Replay the ANSI moves a terminal would, returning the final lines."""
    lines: list[str] = [""]
    row = 0
    for token in re.findall(r"\x1b\[\d*[ABK]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        elif token == "\r" or token == "\x1b[2K":
            if token == "\x1b[2K":
                lines[row] = ""
        elif token.startswith("\x1b["):
            count = int(token[2:-1] or 1)
            row = row - count if token.endswith("A") else row + count
        else:
            lines[row] += token
    return [line for line in lines if line]


def events(layer: str, total: int, *statuses: str):
    for status in statuses:
        current = total if status in ("verifying", "extracting", "done", "exists") else total // 2
        yield {"id": layer, "status": status, "current": current, "total": total}


def test_terminal_shows_one_line_per_layer_updated_in_place():
    out = io.StringIO()
    renderer = ProgressRenderer(out, tty=True, width=120)
    for layer in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"):
        renderer.update({"id": layer, "status": "waiting", "current": 0, "total": 2_000_000})
    for event in events("bbbbbbbbbbbb", 2_000_000, "downloading"):
        renderer.update(event)
    for event in events(
        "aaaaaaaaaaaa", 2_000_000, "downloading", "verifying", "extracting", "done"
    ):
        renderer.update(event)
    renderer.update({"id": "cccccccccccc", "status": "exists", "current": 5, "total": 5})
    renderer.close()
    assert screen(out.getvalue()) == [
        "aaaaaaaaaaaa: Pull complete",
        f"bbbbbbbbbbbb: Downloading {bar(1, 2)} 1 MB/2 MB",
        "cccccccccccc: Already exists",
    ]


def test_long_lines_are_cut_to_the_terminal_width():
    out = io.StringIO()
    renderer = ProgressRenderer(out, tty=True, width=30)
    renderer.update({"id": "a" * 12, "status": "downloading", "current": 1, "total": 10**9})
    assert all(len(line) < 30 for line in screen(out.getvalue()))


def test_not_a_terminal_prints_only_a_summary():
    out = io.StringIO()
    renderer = ProgressRenderer(out, tty=False)
    for event in events("aaaaaaaaaaaa", 3_000_000, "waiting", "downloading", "done"):
        renderer.update(event)
    renderer.update({"id": "bbbbbbbbbbbb", "status": "exists", "current": 1, "total": 1})
    assert out.getvalue() == ""
    renderer.close()
    assert out.getvalue() == "1 layer(s) pulled (3 MB), 1 already present\n"


def test_no_summary_for_an_unfinished_pull():
    out = io.StringIO()
    renderer = ProgressRenderer(out, tty=False)
    renderer.update({"id": "aaaaaaaaaaaa", "status": "downloading", "current": 1, "total": 9})
    renderer.close()
    assert out.getvalue() == ""


def test_bar_fills_with_progress():
    assert bar(0, 10, width=10) == "[>         ]"
    assert bar(5, 10, width=10) == "[=====>    ]"
    assert bar(10, 10, width=10) == "[==========]"


def test_push_lines_on_a_terminal_and_its_summary_elsewhere():
    pushes = [
        {"id": "aaaaaaaaaaaa", "status": "preparing", "current": 0, "total": 2_000_000},
        {"id": "bbbbbbbbbbbb", "status": "preparing", "current": 0, "total": 500},
        {"id": "cccccccccccc", "status": "preparing", "current": 0, "total": 700},
        {"id": "aaaaaaaaaaaa", "status": "pushing", "current": 1_000_000, "total": 2_000_000},
        {"id": "bbbbbbbbbbbb", "status": "present", "current": 500, "total": 500},
        {
            "id": "cccccccccccc",
            "status": "mounted",
            "current": 700,
            "total": 700,
            "from": "team/base",
        },
    ]
    out = io.StringIO()
    renderer = ProgressRenderer(out, tty=True, width=120, verb="pushed")
    for event in pushes:
        renderer.update(event)
    assert screen(out.getvalue()) == [
        f"aaaaaaaaaaaa: Pushing {bar(1, 2)} 1 MB/2 MB",
        "bbbbbbbbbbbb: Layer already exists",
        "cccccccccccc: Mounted from team/base",
    ]
    quiet = io.StringIO()
    renderer = ProgressRenderer(quiet, tty=False, verb="pushed")
    for event in [
        *pushes,
        {"id": "aaaaaaaaaaaa", "status": "pushed", "current": 2_000_000, "total": 2_000_000},
    ]:
        renderer.update(event)
    renderer.close()
    assert quiet.getvalue() == "1 layer(s) pushed (2 MB), 2 already present\n"
