"""Command-line plumbing shared by the workspace's typer apps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer


def one_line_errors(
    *errors: type[BaseException],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a typer command: an exception of one of `errors` (the package's bad-input
    errors, whose messages name the problem and the fix) prints one 'error: ...' line on stderr
    and exits with status 1, without a traceback. Other exceptions propagate unchanged."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except errors as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(1) from None

        return wrapper

    return decorate
