"""Entry point of `moext-live`."""

import typer

app = typer.Typer(
    name="moext-live",
    help="Recognise micro-expressions live from a camera or a video file.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Live recognizer (work in progress: see README status)."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


if __name__ == "__main__":
    app()
