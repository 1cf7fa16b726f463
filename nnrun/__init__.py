"""nnrun: is the output delta a − y or (a − y)·a(1 − a)? Train many small MLPs and measure."""

__version__ = "0.2.0"
# Bumped whenever a change alters any computed number, even in its last bit (2: the matmul
# weight gradient reads a transposed view). --resume refuses to mix rows across revisions.
ARITHMETIC = 2


def run(config, **overrides):
    """Run an experiment from a config path or dict; ``overrides`` are dotted ``--set`` keys.

    Returns an object with ``.runs`` and ``.summary`` DataFrames and ``.path``. Double
    underscores stand for dots: ``nnrun.run("configs/xor.yaml", training__epochs=500)``.
    """
    from nnrun.api import run as _run

    return _run(config, **overrides)
