"""The `moext-train` typer app; command modules under `train/commands/` register on it."""

import typer

app = typer.Typer(
    name="moext-train",
    help=(
        "Train and evaluate MoExt micro-expression recognisers: preprocess the ME datasets, "
        "make synthetic data, pre-train, fine-tune, and evaluate leave-one-subject-out."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: bool = typer.Option(
        False, "--verbose", help="keep the native libraries' start-up logs (TensorFlow Lite, absl, MediaPipe)"
    ),
) -> None:
    """Train and evaluate MoExt micro-expression recognisers."""
    if verbose:
        import os

        # Before any command imports mediapipe or LiteRT: moext._quiet reads it at each use.
        os.environ["MOEXT_VERBOSE"] = "1"
