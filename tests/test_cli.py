"""The command line."""

from __future__ import annotations

import subprocess
import sys

import gridmatch as gm
from gridmatch import cli


def test_version_and_info(capsys, data_root, monkeypatch):
    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gridmatch {gm.__version__}" in out
    assert str(data_root / "fashion-mnist") in out


def test_console_script_runs(data_root):
    exe = [sys.executable, "-m", "gridmatch.cli", "--version"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"gridmatch {gm.__version__}"


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRIDMATCH_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(gm.datasets, "_SYSTEM_DIR", tmp_path)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gridmatch: error:") and "Put the IDX files" in err
