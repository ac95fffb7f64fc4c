"""The command line: list, run (parameter checking), demo (failures reported, others still run)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from kit.cli import main
from kit.runner import parse_value


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("None") is None and parse_value("[4, 5]") == [4, 5] and parse_value("full") == "full"


def test_list_prints_every_series(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for key in ("trajectory", "rld", "nlran", "cmdfd"):
        assert key in out


def test_run_rejects_unknown_parameter(capsys):
    assert main(["run", "start", "-p", "max_stepz", "3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) ['max_stepz']" in err and "max_steps" in err


def test_run_rejects_unknown_series(capsys):
    assert main(["run", "nosuch", "01_train"]) == 2
    assert "unknown series 'nosuch'" in capsys.readouterr().err


def _notebook(path, source):
    nb = new_notebook(cells=[new_code_cell('output_dir = "x"', metadata={"tags": ["parameters"]}),
                             new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.mark.notebook
def test_demo_reports_a_failing_notebook_and_runs_the_rest(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    _notebook(root / "notebooks" / "00_start_here.ipynb", "raise RuntimeError('boom in start')")
    ok = ("import json, pathlib\np = pathlib.Path(output_dir)\np.mkdir(parents=True, exist_ok=True)\n"
          "(p / 'metrics.json').write_text(json.dumps({'answer': 42}))")
    _notebook(root / "notebooks" / "trajectory" / "01_train.ipynb", ok)
    monkeypatch.setenv("KIT_ROOT", str(root))
    assert main(["demo", "--output-dir", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "FAILED 00_start_here" in out
    index = (tmp_path / "out" / "index.html").read_text()
    assert "boom in start" in index and "answer" in index and "42" in index
    assert 'href="trajectory/01_train/01_train.html"' in index
    assert json.loads((tmp_path / "out" / "trajectory" / "01_train" / "metrics.json").read_text()) == {"answer": 42}


def test_train_runs_a_series_without_a_notebook(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", "trajectory", "-p", "max_steps", "5", "-p", "dataset", "ring2d", "-p", "hidden", "16",
                 "--output-dir", str(out)]) == 0
    assert (out / "checkpoints" / "step_00000005.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "ring2d"
    assert main(["train", "trajectory", "-p", "max_stepz", "5", "--output-dir", str(out)]) == 2
    assert "unknown TrajectoryConfig fields ['max_stepz']" in capsys.readouterr().err


def test_voila_serves_explore_notebooks_without_code():
    from kit.cli import voila_command

    cmd = voila_command("trajectory", port=8899)
    assert cmd[1:3] == ["-m", "voila"] and cmd[3].endswith("notebooks/trajectory/03_explore.ipynb")
    assert "--strip_sources=True" in cmd and "--port=8899" in cmd and "--no-browser" in cmd
    assert voila_command(None)[3].endswith("notebooks")
    with pytest.raises(ValueError, match="unknown series"):
        voila_command("nosuch")


def test_voila_reports_an_unknown_series(capsys):
    assert main(["voila", "nosuch"]) == 2
    assert "unknown series 'nosuch'" in capsys.readouterr().err
