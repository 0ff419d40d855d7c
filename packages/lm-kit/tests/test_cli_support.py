"""one_line_errors: listed errors become one stderr line and exit 1; others propagate."""

import pytest
import typer
from lm_kit.cli_support import one_line_errors
from typer.testing import CliRunner


class BadInput(ValueError):
    pass


def test_listed_errors_print_one_line_and_exit_1_others_propagate():
    app = typer.Typer()

    @app.command()
    @one_line_errors(BadInput)
    def run(kind: str) -> None:
        if kind == "bad":
            raise BadInput("--kind bad: use good")
        if kind == "bug":
            raise KeyError("a bug keeps its traceback")
        typer.echo("ok")

    runner = CliRunner()
    res = runner.invoke(app, ["bad"])
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: --kind bad: use good"
    assert res.exception is None or isinstance(res.exception, SystemExit)
    res = runner.invoke(app, ["bug"])
    assert isinstance(res.exception, KeyError)
    assert runner.invoke(app, ["good"]).stdout.strip() == "ok"
    with pytest.raises(KeyError):
        one_line_errors(BadInput)(lambda: {}["x"])()
