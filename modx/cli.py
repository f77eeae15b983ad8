"""The ``modx`` command line (continual training)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continual CLIP training with Mod-X and its baselines.")


@app.command()
def train():
    """Run a continual training (not built yet)."""
    typer.echo("modx train is not built yet", err=True)
    raise typer.Exit(2)


def main(argv=None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main()
