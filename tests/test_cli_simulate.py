"""``pmrlhf simulate`` as a user runs it: a subprocess, a table, files, one-line errors."""

import json
import subprocess
import sys


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_runs_named_experiments_and_prints_a_table(tmp_path):
    result = cli("collapse", "heterogeneous", "--quick", "--out", str(tmp_path), "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "collapse" in result.stdout and "kl_minority_mass" in result.stdout
    files = ["collapse.csv", "collapse.pdf", "collapse.png"]  # a PDF beside each PNG
    files += ["heterogeneous.csv", "heterogeneous.pdf", "heterogeneous.png"]
    files.append("summary.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    # The last line names the folder and the files written, no placeholder.
    assert result.stdout.splitlines()[-1] == f"wrote to {tmp_path}: {', '.join(files)}"


def test_cli_unknown_name_is_one_line_error(tmp_path):
    result = cli("nope", "--out", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "token_tree" in result.stderr
    assert not any(tmp_path.iterdir())


def test_cli_rejects_a_negative_seed_in_one_line(tmp_path):
    result = cli("collapse", "--quick", "--seed", "-1", "--out", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "seed" in result.stderr and result.stderr.strip().count("\n") == 0


def test_cli_summary_json_has_headlines(tmp_path):
    result = cli("token_tree", "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (
        summary["quick"] is True and "pm_mass_on_meaningful" in summary["experiments"]["token_tree"]
    )
