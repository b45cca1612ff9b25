"""README.md's code blocks run as written: every `python` block in a fresh interpreter, in an
empty directory. `bash` blocks are shell commands; the quick start's two run in CI (.ci/run
extracts them from README.md)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK_START = [
    "pip install . && python -m safeops demo",
    'pip install ".[test]" && pytest tests',
]


def readme_blocks():
    """(language, code, line number) of every fenced block of README.md."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    ]


PYTHON_BLOCKS = [(code, line) for lang, code, line in readme_blocks() if lang == "python"]


def test_every_block_says_what_it_is():
    langs = {line: lang for lang, _, line in readme_blocks()}
    assert set(langs.values()) <= {"python", "bash"}, langs


def test_quick_start_is_the_two_commands():
    bash = [code for lang, code, _ in readme_blocks() if lang == "bash"]
    assert bash[0].splitlines() == QUICK_START


@pytest.mark.parametrize("code, line", PYTHON_BLOCKS, ids=[f"line{n}" for _, n in PYTHON_BLOCKS])
def test_python_block_runs(code, line, tmp_path):
    for module in re.findall(r"^import (pandas|matplotlib)\b", code, re.M):
        pytest.importorskip(module)  # a test extra; absent where only the wheel is installed
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, f"README.md line {line}:\n{out.stderr[-3000:]}"
    printed = out.stdout.splitlines()
    assert printed, f"README.md line {line} prints nothing"
    # A print whose comment shows an array shows what it prints.
    shown = re.findall(r"^print\(.*\)  # (\[.*)$", code, re.M)
    if shown:
        assert len(printed) == len(shown)
        for got, comment in zip(printed, shown, strict=True):
            assert comment.startswith(got), f"README.md line {line}: prints {got}, says {comment}"
