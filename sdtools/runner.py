"""Running a command line: user errors as one line (exit 2), interrupts as exit 130 / 143.

Used by both ``sdtools`` and ``modx``.
"""

from __future__ import annotations

import contextlib
import sys

import typer


def _on_sigterm(signum, frame):
    from .errors import Interrupted

    raise Interrupted(signum)


def run_app(typer_app, argv=None, loggers: tuple[str, ...] = ("sdtools",)) -> None:
    """Run a typer app: a :class:`~sdtools.errors.UserError` prints one line and exits with
    code 2; Ctrl-C exits 130 and SIGTERM 143, saying "interrupted". Anything else is a bug and
    keeps its traceback. Output files are written atomically, so an interrupted command
    leaves no partial file. The messages of ``loggers`` are shown on stderr meanwhile
    (:func:`~sdtools.log.cli_messages`)."""
    import signal

    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    from .log import cli_messages

    try:
        with cli_messages(loggers):
            code = _run(typer_app, argv)
    finally:
        if previous is not None:  # give the caller's handler back (in-process callers)
            signal.signal(signal.SIGTERM, previous)
    if isinstance(code, int) and code:
        if code == 130:
            print("interrupted", file=sys.stderr)
        sys.exit(code)


def _run(typer_app, argv):
    from .errors import Interrupted, UserError

    try:
        return typer_app(args=argv, standalone_mode=False)
    except SystemExit:
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        print("interrupted", file=sys.stderr)
        sys.exit(143 if isinstance(exc, Interrupted) else 130)
    except UserError as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        # click's exceptions (typer may vendor its own click), recognised by their shape
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors: code 2
            msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            ctx = getattr(exc, "ctx", None)
            where = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            print(f"error: {' '.join(msg.split()).rstrip('.')}{where}", file=sys.stderr)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        raise


def add_version(typer_app, package: str, help_text: str) -> None:
    """Give ``typer_app`` an eager ``--version`` option printing ``package`` and its version,
    and ``help_text`` as the top-level help."""

    def show(value: bool):
        if value:
            from importlib import import_module

            typer.echo(f"{package} {import_module(package).__version__}")
            raise typer.Exit()

    option = typer.Option(False, "--version", callback=show, is_eager=True,
                          help="print the version and exit")

    def main(version: bool = option):
        pass

    main.__doc__ = help_text
    typer_app.callback()(main)
