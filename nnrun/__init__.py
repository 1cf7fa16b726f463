"""nnrun: is the output delta a − y or (a − y)·a(1 − a)? Train many small MLPs and measure."""

__version__ = "0.1.0"


def run(config, **overrides):
    """Run an experiment from a config path or dict; ``overrides`` are dotted ``--set`` keys.

    Returns an object with ``.runs`` and ``.summary`` DataFrames and ``.path``. Double
    underscores stand for dots: ``nnrun.run("configs/xor.yaml", training__epochs=500)``.
    """
    from nnrun.api import run as _run

    return _run(config, **overrides)
