"""Run the real edgepool CLI in-process and get (exit code, stdout, stderr)."""

from __future__ import annotations

from typer.testing import CliRunner


def run(*args: object) -> tuple[int, str, str]:
    from edgepool.cli.main import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr
