"""The commands shown in README.md and docs/ exist as written.

Every `kbpipe ...` line is parsed by kbpipe's own argument parser (an unknown
command or flag fails), every `make ...` line names real targets and
variables, and the README's read-only commands (`--help`, `config`, `query`)
run for real against a small run built from the bundled sample.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kbpipe import cli
from kbpipe.commands.makevars import BY_NAME

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def shell_commands(path: Path) -> list[list[str]]:
    """Each command of the file's ```bash blocks as argv, multi-line quotes joined."""
    text = path.read_text(encoding="utf-8")
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending = ""
        heredoc = None
        for line in block.splitlines():
            if heredoc is not None:
                heredoc = None if line.strip() == heredoc else heredoc
                continue
            if m := re.search(r"<<'?(\w+)'?", line):
                heredoc = m.group(1)
                continue
            pending = f"{pending}\n{line}" if pending else line
            try:
                argv = shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on on the next line
                continue
            pending = ""
            if argv:
                commands.append(argv)
    return commands


def _kbpipe_argv(argv: list[str]) -> list[str] | None:
    if argv[0] in ("kbpipe", ".venv/bin/kbpipe"):
        return argv[1:]
    return None


def _all(prog: str) -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        for argv in shell_commands(path):
            if argv[0] == prog or (prog == "kbpipe" and _kbpipe_argv(argv) is not None):
                found.append((path.name, argv))
    return found


@pytest.mark.parametrize(("doc", "argv"), _all("kbpipe"), ids=lambda v: str(v)[:60])
def test_kbpipe_command_parses(doc: str, argv: list[str]) -> None:
    args = _kbpipe_argv(argv)
    assert args is not None
    if not args or "--help" in args or "--version" in args:
        return
    command = next((a for a in args if not a.startswith("-")), None)
    assert command in cli.COMMANDS, f"{doc}: unknown command in {shlex.join(argv)}"
    parser, _ = cli.build_parser(command)
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{shlex.join(argv)}` does not parse (exit {exc.code})")


@pytest.mark.parametrize(("doc", "argv"), _all("make"), ids=lambda v: str(v)[:60])
def test_make_command_names_real_targets_and_variables(doc: str, argv: list[str]) -> None:
    for word in argv[1:]:
        if "=" in word:
            var = word.split("=", 1)[0]
            # The Makefile's own, or one `kbpipe config --make` resolves for it.
            known = var in BY_NAME or re.search(rf"\b{re.escape(var)}\b", MAKEFILE)
            assert known, f"{doc}: no make variable {var}"
        elif not word.startswith("-"):
            assert re.search(rf"^{re.escape(word)}\s*:", MAKEFILE, flags=re.M) or re.search(
                rf"^\S*{re.escape(word)}\S*:.*##", MAKEFILE, flags=re.M
            ), f"{doc}: no make target {word}"


def test_the_parser_rejects_what_the_docs_test_must_catch() -> None:
    parser, _ = cli.build_parser("dedupe")
    with pytest.raises(SystemExit):
        parser.parse_args(["dedupe", "--no-such-flag"])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A converted, filtered and deduplicated run of the sample, as the README's commands expect."""
    out = tmp_path_factory.mktemp("docs")
    env = {"DATA_MODEL": "glm4_7", "OUTPUT_DIR": str(out / "outputs"), "PATH": "/usr/bin:/bin"}
    kbpipe = str(ROOT / ".venv" / "bin" / "kbpipe")
    sample = out / "sample"
    steps = [
        [kbpipe, "sample", "-o", str(sample)],
        [kbpipe, "convert", str(sample / "kernelbook-env.jsonl"), "--no-upload"],
        [kbpipe, "filter", "--rater", "offline", "--no-upload"],
        [kbpipe, "dedupe", "--no-upload"],
    ]
    for argv in steps:
        subprocess.run(argv, cwd=out, env=env, check=True, capture_output=True)
    return {"cwd": str(out), **env}


def test_readme_read_only_commands_run(demo_run: dict[str, str]) -> None:
    cwd = demo_run.pop("cwd")
    ran = 0
    for argv in shell_commands(ROOT / "README.md"):
        args = _kbpipe_argv(argv)
        command = next((a for a in (args or []) if not a.startswith("-")), None)
        if args is None or not (command in ("query", "config") or "--help" in args or not args):
            continue
        exe = str(ROOT / ".venv" / "bin" / "kbpipe")
        proc = subprocess.run([exe, *args], cwd=cwd, env=demo_run, capture_output=True, text=True)
        assert proc.returncode == 0, f"`{shlex.join(argv)}` failed: {proc.stderr}"
        ran += 1
    demo_run["cwd"] = cwd
    assert ran >= 2
