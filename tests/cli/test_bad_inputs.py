"""The bad-input corpus: every broken input in tests/cli/bad_inputs/ gives one clear message.

Each case of tests/cli/bad_inputs/cases.yaml (its header documents the keys) is run through
the CLI with Typer's CliRunner, in its own directory, and must:
  * exit with the case's code (2: usage and config errors, 1: data and run errors);
  * print every expected substring (whitespace normalized: Rich may wrap long lines);
  * not crash: no exception escapes the command and no "Traceback" is printed;
  * print ONE message: exactly one line starting with "error:";
  * leave nothing half-written: the case's files and whatever already was under {tmp}
    (a copied run directory, for resume and evaluate cases) are byte-for-byte unchanged,
    a failed command creates nothing under {tmp} (a failed train leaves no run
    directory), and no ".tmp-*" file is left anywhere under {tmp}.

The only training is the `trained_run` fixture (1 epoch, 4 units, 26 steps), shared by the
whole module; cases that need a run copy it.
"""

import shlex
import shutil
import traceback
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from seqmask.cli import app

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
CASE_KEYS = {"name", "command", "exit_code", "expect", "setup"}
SETUP_KEYS = ("run", "run_config", "copy", "truncate", "delete", "write")

runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def _snapshot(root):
    """{relative path: bytes (a file) or None (a directory)} for everything under `root`."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _describe_changes(before, after):
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished tiny run (trained once for the whole module)."""
    run_dir = tmp_path_factory.mktemp("bad_inputs_run") / "run"
    result = _invoke(["train", run_dir, "--config", CORPUS / "_trained_run" / "config.yaml", "--quiet"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return run_dir


def test_the_corpus_is_well_formed():
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(CASES) >= 30
    for case in CASES:
        assert set(case) <= CASE_KEYS, (case["name"], set(case) - CASE_KEYS)
        assert {"name", "command", "exit_code", "expect"} <= set(case), case["name"]
        assert case["exit_code"] in (1, 2), case["name"]
        assert case["expect"] and all(isinstance(s, str) for s in case["expect"]), case["name"]
        assert set(case.get("setup") or {}) <= set(SETUP_KEYS), case["name"]
    dirs = {p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert dirs <= set(names), f"directories with no case in cases.yaml: {sorted(dirs - set(names))}"


def _setup(case, fill, request):
    setup = case.get("setup") or {}
    run_copy = None
    if "run" in setup:
        run_copy = Path(fill(setup["run"]))
        shutil.copytree(request.getfixturevalue("trained_run"), run_copy)
    if "run_config" in setup:
        path = run_copy / "config.yaml"
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key, value in setup["run_config"].items():
            section, name = key.split(".")
            cfg[section][name] = fill(value) if isinstance(value, str) else value
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    for source, path in (setup.get("copy") or {}).items():
        shutil.copyfile(fill(source), fill(path))
    for path in setup.get("truncate", ()):
        path = Path(fill(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    for path in setup.get("delete", ()):
        Path(fill(path)).unlink()
    for path, text in (setup.get("write") or {}).items():
        path = Path(fill(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_input_gives_one_clear_message(case, tmp_path, monkeypatch, request):
    case_dir = CORPUS / case["name"]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    if case_dir.is_dir():
        cwd = case_dir
    else:
        cwd = tmp_path / "cwd"
        cwd.mkdir()

    def fill(text):
        return text.replace("{tmp}", str(tmp)).replace("{case}", str(case_dir)).replace("{corpus}", str(CORPUS))

    _setup(case, fill, request)
    args = [fill(a) for a in shlex.split(case["command"])]
    case_before, tmp_before = _snapshot(case_dir), _snapshot(tmp)

    monkeypatch.chdir(cwd)
    result = _invoke(args)
    output = result.output
    text = " ".join(output.split())
    shown = f"command: seqmask {shlex.join(args)}\nexit code: {result.exit_code}\noutput:\n{output}"

    print(shown)
    problems = []
    # No crash: an exception escaping the command is a traceback for the user.
    crash = ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"the command crashed ({type(result.exception).__name__}) instead of printing one message")
        crash = "\n" + "".join(traceback.format_exception(*result.exc_info))
    if "Traceback" in output:
        problems.append("the output holds a traceback")
    if result.exit_code != case["exit_code"]:
        problems.append(f"exit code {result.exit_code}, expected {case['exit_code']}")
    missing = [s for s in case["expect"] if " ".join(s.split()) not in text]
    if missing:
        problems.append(f"the message lacks {missing}")
    error_lines = [line for line in output.splitlines() if line.lstrip().startswith("error:")]
    if len(error_lines) != 1:
        problems.append(f"{len(error_lines)} lines start with 'error:', expected exactly one")

    # Nothing half-written: the inputs and everything already under {tmp} are untouched,
    # and the failed command left nothing behind (no run directory, no .tmp-* files).
    leftovers = [str(p.relative_to(tmp)) for p in tmp.rglob(".tmp-*")]
    if leftovers:
        problems.append(f"temporary files left behind: {leftovers}")
    if args[0] == "train" and len(args) > 1 and not args[1].startswith("-"):  # train RUN_DIR ...
        run_dir = (cwd / args[1]).resolve()
        inside = run_dir.is_relative_to(tmp.resolve())
        if inside and str(run_dir.relative_to(tmp.resolve())) not in tmp_before and run_dir.exists():
            problems.append(f"the failed train left its run directory {run_dir} behind")
    tmp_after = _snapshot(tmp)
    if tmp_after != tmp_before:
        problems.append(f"the failed command changed {{tmp}}: {_describe_changes(tmp_before, tmp_after)}")
    case_after = _snapshot(case_dir)
    if case_after != case_before:
        problems.append(f"the command changed the corpus: {_describe_changes(case_before, case_after)}")

    assert not problems, "\n".join(["", *problems, shown + crash])
