"""nnrun: is the output delta a − y or (a − y)·a(1 − a)? Train many small MLPs and measure."""

__version__ = "0.2.0"
# Bumped whenever a change alters any computed number, even in its last bit (2: the matmul
# weight gradient reads a transposed view). --resume refuses to mix rows across revisions.
ARITHMETIC = 2


def run(config, **overrides):
    """Run an experiment from a config path or dict (None: the built-in XOR sweep).

    ``overrides`` are dotted ``--set`` keys, double underscores standing for dots:
    ``nnrun.run("configs/xor.yaml", training__epochs=500)``. Two are not config keys:

    - ``out``: the results directory, new or empty (default
      ``results/<name>/<timestamp>-<hash8>/``, as for ``nnrun train``).
    - ``workers``: cores to train on (worker processes, or threads of one worker where the
      compiled backend trains every run). Default: all cores, as the CLI, where processes fork
      (Linux). Elsewhere (macOS, Windows) a pool starts fresh interpreters that import your
      script, so the default is 1; to use more, call ``nnrun.run`` under
      ``if __name__ == "__main__":`` and pass ``workers=N``.

    Returns the experiment (see ``load``). Ctrl-C or SIGTERM raises ``nnrun.api.Interrupted``
    after saving what finished.
    """
    from nnrun.api import run as _run

    return _run(config, **overrides)


def load(directory):
    """A results directory as stored: ``.config``, ``.manifest``, ``.status`` (complete,
    partial or running) and the ``.runs``, ``.summary``, ``.comparison`` and ``.tuned``
    DataFrames; a partial experiment has the rows it finished and empty tables. Reads only."""
    from nnrun.api import load as _load

    return _load(directory)
