"""Helpers shared by tests: run the real ``hpo`` command, write study files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def hpo(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m hpo ARGS``; the caller's own ``HPO_STORAGE`` is dropped unless
    ``env`` sets it, so no test writes to a developer's database by accident."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    full_env.pop("HPO_STORAGE", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hpo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def write(tmp_path: Path, data: dict[str, Any], name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    """The ``hpo`` entry point in this process: (exit code, stdout, stderr)."""
    from hpo.cli import main

    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
