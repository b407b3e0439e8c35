"""``pmrlhf derive`` / ``pmrlhf check`` through a subprocess, as a user runs them."""

import json
import subprocess
import sys


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_derive_prints_markdown_latex_and_json():
    md = run("derive")
    assert md.returncode == 0 and "dsolve" in md.stdout and "\\log" in md.stdout
    tex = run("derive", "--format", "latex")
    assert tex.returncode == 0 and tex.stdout.startswith("\\begin{enumerate}")
    payload = json.loads(run("derive", "--format", "json").stdout)
    assert payload["regularizer"] == "-log(pi)"


def test_check_prints_table_and_succeeds():
    result = run("check", "--trials", "4")
    assert result.returncode == 0, result.stderr
    assert "-log(pi)" in result.stdout and "True" in result.stdout and "False" in result.stdout


def test_check_json():
    rows = json.loads(run("check", "--trials", "3", "--json").stdout)
    assert all(row["passed"] == row["should_pass"] for row in rows)


def test_bad_argument_is_one_line_error_without_traceback():
    result = run("check", "--n-responses", "1")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "n_responses" in result.stderr


def test_no_command_prints_help_and_fails():
    result = run()
    assert result.returncode != 0 and "derive" in result.stdout


def test_negative_n_responses_names_the_option():
    result = run("check", "--n-responses", "-3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "n_responses" in result.stderr
    assert "-3" in result.stderr


def _first_line_then_close(args):
    """``args | head -n 1``: read one line of the process's stdout, close the pipe, wait."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return first, process.wait(timeout=300), stderr


def test_a_closed_pipe_ends_the_command_quietly():
    first, status, stderr = _first_line_then_close(
        [sys.executable, "-m", "pmrlhf.cli", "derive", "--format", "json"]
    )
    assert first.startswith(b"{") and status in (0, 1) and stderr == "", stderr
    # Output well beyond the pipe's buffer: the writer surely meets the closed pipe.
    flood = (
        "import sys, pmrlhf.cli, pmrlhf.cli.theory as theory\n"
        "def flood(args):\n"
        "    for _ in range(100_000):\n"
        "        print('x' * 99)\n"
        "theory._derive = flood\n"
        "sys.exit(pmrlhf.cli.main(['derive']))\n"
    )
    first, status, stderr = _first_line_then_close([sys.executable, "-c", flood])
    assert first == b"x" * 99 + b"\n"
    assert status == 1 and stderr == "", stderr
