"""Run the shell blocks of a markdown guide in order, as a reader would paste them into one terminal.

A guide is cut into steps at its ``## `` headings; a step's script is its fenced ``sh`` blocks (and
the ``$ `` command lines of its ``console`` blocks). Each step runs in a fresh ``bash -euo pipefail``
that starts from the environment the previous step left, so a variable one step exports is there in
the next, as in the reader's terminal.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^```(?P<info>[^`]*)$")
_SHELL_LANGUAGES = {"sh", "console"}


@dataclass(frozen=True)
class Step:
    """One ``## `` section: its heading and the commands of its shell blocks, in order."""

    title: str
    blocks: tuple[str, ...]

    @property
    def script(self) -> str:
        return "\n".join(self.blocks)


def _console_commands(lines: list[str]) -> list[str]:
    """The commands of a console transcript: ``$ `` lines and their backslash continuations."""
    commands: list[str] = []
    continuing = False
    for line in lines:
        if line.startswith("$ ") or continuing:
            commands.append(line[2:] if line.startswith("$ ") and not continuing else line)
            continuing = line.endswith("\\")
    return commands


@dataclass(frozen=True)
class Block:
    """One fenced block: the ``## `` section it sits in, its language and its text."""

    section: str
    language: str
    text: str


def fenced_blocks(markdown: str) -> list[Block]:
    """Every fenced block of the document, in order."""
    found: list[Block] = []
    section = ""
    language: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        fence = _FENCE.match(line)
        if language is None and fence:
            language = fence["info"].split(maxsplit=1)[0] if fence["info"].strip() else ""
            body = []
        elif language is not None and line == "```":
            found.append(Block(section, language, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
        elif line.startswith("## "):
            section = line[3:].strip()
    return found


def steps(markdown: str) -> list[Step]:
    """The guide's sections that hold shell blocks, in document order."""
    found: list[Step] = []
    for block in fenced_blocks(markdown):
        if block.language not in _SHELL_LANGUAGES:
            continue
        lines = block.text.splitlines()
        text = "\n".join(_console_commands(lines) if block.language == "console" else lines)
        if found and found[-1].title == block.section:
            found[-1] = Step(block.section, (*found[-1].blocks, text))
        else:
            found.append(Step(block.section, (text,)))
    return found


@dataclass
class Terminal:
    """A reader's terminal: the environment carries over from one step to the next."""

    cwd: Path
    env: dict[str, str]
    transcript: list[str] = field(default_factory=list)

    def run(self, script: str, *, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        with tempfile.NamedTemporaryFile(prefix="walkthrough-env-", delete=False) as handle:
            state = Path(handle.name)
        try:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f'{script}\nenv -0 > "$WALKTHROUGH_STATE"\n'],
                cwd=self.cwd,
                env={**self.env, "WALKTHROUGH_STATE": str(state)},
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if result.returncode == 0:
                self.env = _read_env(state.read_bytes(), drop=("WALKTHROUGH_STATE",))
        finally:
            state.unlink(missing_ok=True)
        self.transcript.append(f"$ {script}\n{result.stdout}{result.stderr}")
        return result


def _read_env(raw: bytes, *, drop: tuple[str, ...]) -> dict[str, str]:
    pairs = (entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)
    return {name: value for name, value in pairs if name not in drop}
