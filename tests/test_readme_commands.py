"""Every `snakemake` command the manual shows works when copied: README.md and its pages, docs/*.md.

Each command (from the fenced code blocks and the inline code spans) is
1. parsed by Snakemake's own argument parser (``snakemake.cli.get_argument_parser``): it must parse, every word
   that names a rule of the workflow must come out as a target (a target after ``--resources`` or
   ``--configfile`` is taken as one of their values), and every ``--configfile`` must exist;
2. dry-run (``-n``) in a scratch copy of the repository (symlinks; nothing of the checkout's ``.snakemake/`` or
   ``results/`` is touched, and nothing may be downloaded), with the cluster placeholders filled in, except
   what a dry run cannot check honestly, which is only parsed:
   - ``--report <file>``: a report needs the results, which a fresh checkout does not have; the dry run drops
     the option and checks the rest of the command (targets, config, profile). The report itself is built by
     the end-to-end test ``test_whole_workflow_on_a_slice_builds_figures_tables_and_the_report``;
   - ``--sdm conda`` / ``--software-deployment-method conda`` where no ``conda`` is on PATH: Snakemake asks
     conda for its version even in a dry run; the dry run drops the option;
   - ``--profile profiles/slurm`` is dry-run as it is: a dry run submits nothing, and needs no Slurm;
   - ``--summary`` prints its table of outputs instead of a dry run's jobs: that table must come out.
Conda and other non-Snakemake commands are skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = {"<account>": "test_account", "<partition>": "test_partition"}
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
SEPARATORS = {"&&", "||", ";", "|"}
# what the scratch copy links to; the dry runs read nothing else
REPO_PARTS = ("workflow", "config", "profiles", "src", "scripts", "envs", "pyproject.toml")


def commands_in(text: str) -> list[list[str]]:
    """The argument lists (after the program name) of the snakemake commands in one line of shell."""
    if not re.search(r"(^|[\s/])snakemake(\s|$)", text):
        return []
    words = shlex.split(text, comments=True)
    out, current = [], []
    for word in words + [";"]:
        if word in SEPARATORS:
            if current and (current[0] == "snakemake" or current[0].endswith("/snakemake")):
                out.append(current[1:])
            current = []
        else:
            current.append(word)
    return out


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """(the command as the README writes it, its arguments) for every snakemake command of a Markdown text."""
    found = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            found += [(line.strip(), args) for args in commands_in(line)]
    for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
        found += [(span, args) for args in commands_in(span)]
    return found


def manual_commands() -> list[tuple[str, str, list[str]]]:
    """(the file, the command as it is written there, its arguments) for README.md and every page of docs/."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [(f.relative_to(ROOT).as_posix(), shown, args) for f in files
            for shown, args in readme_commands(f.read_text())]


def fill(word: str) -> str:
    """A word with the README's placeholders (<account>, <partition>) filled in."""
    for placeholder, value in PLACEHOLDERS.items():
        word = word.replace(placeholder, value)
    return word


def rule_names() -> set[str]:
    files = [ROOT / "workflow/Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    return {m for f in files for m in re.findall(r"^\s*rule\s+(\w+)\s*:", f.read_text(), re.M)}


def parse_problems(args: list[str], rules: set[str]) -> list[str]:
    """What is wrong with a command's arguments as Snakemake's parser reads them (nothing: [])."""
    from snakemake.cli import get_argument_parser

    args = [fill(a) for a in args]
    try:
        parsed = get_argument_parser().parse_args(args)
    except SystemExit:
        return ["Snakemake's argument parser rejects it (see its usage message above)"]
    except Exception as exc:  # e.g. --resources reading a target as a resource: "dictionary update sequence ..."
        return [f"Snakemake's argument parser fails on it: {type(exc).__name__}: {exc}"]
    problems = []
    targets = set(parsed.targets or [])
    for word in args:
        if word in rules and word not in targets:
            problems.append(f"{word!r} names a rule but is not read as a target (it follows an option that takes "
                            "every word after it; put targets first)")
    for target in targets - rules:
        if "/" not in target:
            problems.append(f"target {target!r} is neither a rule of the workflow nor a file path")
    for path in parsed.configfile or []:
        if not (ROOT / path).is_file():
            problems.append(f"--configfile {path}: no such file")
    return problems


def dry_run_args(args: list[str]) -> list[str]:
    """The command's arguments for a dry run: placeholders filled in, what a dry run cannot check dropped."""
    out, skip = [], 0
    no_conda = shutil.which("conda") is None
    for i, word in enumerate(args):
        if skip:
            skip -= 1
            continue
        word = fill(word)
        if word == "--report":
            skip = 1 if i + 1 < len(args) and not args[i + 1].startswith("-") else 0
            continue
        if word in ("--sdm", "--software-deployment-method") and no_conda and args[i + 1:i + 2] == ["conda"]:
            skip = 1
            continue
        out.append(word)
    return out if {"-n", "--dry-run", "--dryrun"} & set(out) else out + ["-n"]


def scratch_copy(work: Path) -> Path:
    work.mkdir(parents=True)
    for part in REPO_PARTS:
        (work / part).symlink_to(ROOT / part)
    return work


def test_readme_shows_the_commands_the_test_checks():
    commands = readme_commands((ROOT / "README.md").read_text())
    written = {shown for shown, _ in commands}
    assert len(commands) >= 8, written
    # the quick start's two, the full-scale run, the cluster command
    assert any(a[:3] == ["--cores", "2", "--configfile"] for _, a in commands), written
    assert ["--cores", "8", "--resources", "gpu=2"] in [a for _, a in commands], written
    assert any("--profile" in a for _, a in commands), written


def test_the_pages_commands_are_checked_too():
    by_file = {}
    for file, shown, args in manual_commands():
        by_file.setdefault(file, []).append(args)
    # each experiment's page, the full-scale and the cluster pages (the conda cluster command lives there)
    for page in ("colored_mnist", "reweighting", "coco", "waterbirds", "full_scale", "cluster"):
        assert by_file.get(f"docs/{page}.md"), f"docs/{page}.md: no snakemake command found ({sorted(by_file)})"
    assert any("--sdm" in a and "--profile" in a for a in by_file["docs/cluster.md"])
    assert ["coco_calibration"] in by_file["docs/coco.md"]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("snakemake --cores 8 --resources gpu=2 colored_mnist", "argument parser fails on it"),
        ("snakemake --configfile config/mini.yaml colored_mnist", "'colored_mnist' names a rule but is not read as"),
        (".venv/bin/snakemake -n --default-resources slurm_account=<account> reweighting", "argument parser"),
    ],
)
def test_a_target_after_an_option_that_takes_many_words_is_caught(line, problem):
    (args,) = commands_in(line)
    assert any(problem in p for p in parse_problems(args, rule_names())), parse_problems(args, rule_names())


def test_every_readme_command_parses_and_dry_runs(tmp_path):
    rules = rule_names()
    commands = manual_commands()
    failures = [f"{file} `{shown}`: {p}" for file, shown, args in commands for p in parse_problems(args, rules)]
    assert not failures, "\n".join(failures)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    runs = {}  # dry-run arguments -> the command shown, with its file (the same dry run once)
    for file, shown, args in commands:
        runs.setdefault(tuple(dry_run_args(args)), f"{file} `{shown}`")

    def dry_run(i, run_args):
        work = scratch_copy(tmp_path / str(i))  # one copy each: the runs share no .snakemake/
        proc = subprocess.run([sys.executable, "-m", "snakemake", *run_args], cwd=work, capture_output=True,
                              text=True, timeout=300, env=env)
        return work, proc

    # two at a time: each is one single-threaded process, mostly Python start-up and the DAG of the config
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(dry_run, range(len(runs)), runs))
    for (run_args, shown), (work, proc) in zip(runs.items(), results):
        out = proc.stdout + proc.stderr
        done = r"This was a dry-run|Nothing to be done|Unlocked|^output_file\tdate\trule"  # the last: --summary
        if proc.returncode != 0 or not re.search(done, out, re.M):
            failures.append(f"{shown}: `snakemake {' '.join(run_args)}` ended with {proc.returncode}:\n"
                            f"{out[-2000:]}")
        # nothing was downloaded or built: a dry run leaves only Snakemake's own metadata
        made = {p.name for p in work.iterdir()} - set(REPO_PARTS) - {".snakemake"}
        if made:
            failures.append(f"{shown}: the dry run made {sorted(made)}")
    assert not failures, "\n\n".join(failures)
