"""`python -m nnrun` and the `nnrun` console script: signal handlers first, then the CLI.

The handlers go in before Typer, NumPy and pandas load, so a Ctrl-C or SIGTERM in the
first second is recorded and answered like any other, never a traceback from an import.
"""

from nnrun import signals


def main() -> None:
    signals.install()
    from nnrun.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
