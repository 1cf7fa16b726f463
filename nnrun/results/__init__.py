"""The results directory: every file's name, keys and columns, and the only code that writes
or reads them. Other modules ask this package; none spells a file name or a key.

    results/<name>/<UTC stamp>-<config hash8>/      (new_dir; created whole by create)
        manifest.json       status, counts, provenance             manifest.py
        config.yaml         the resolved config it ran             manifest.py
        nnrun.lock          held by the nnrun running it           nnrun.locks
        journal/chunk-NNNNNN.npz   finished chunks, until complete journal.py
        runs.csv            one row per run                        runs.py
        curves.npz          per-run curves (when complete)         arrays.py
        weights.npz         r{run_id}.W{l}, … (logging.save_weights)  arrays.py
        summary.csv comparison.csv tuned.csv tuning_budget.csv      directory.py
        plots/  report.html  report.md   (nnrun plot / nnrun report) directory.py
    results/study/<UTC stamp>-<fingerprint8>/
        manifest.json (kind: study), study.csv, and one results directory per problem

Every write is atomic (files.py): a kill leaves each file complete or absent.
"""

from nnrun.results.arrays import CURVES, has_curves, read_curves, read_init_weights, trained_dataset, weights_file, write_curves, write_weights
from nnrun.results.directory import (
    PLOTS,
    REPORT_HTML,
    REPORT_MD,
    TABLES,
    create,
    find_results,
    holding,
    listing,
    new_dir,
    read_table,
    require_new_run_dir,
    table_file,
    write_study_table,
    write_tables,
)
from nnrun.results.files import ResultsError, atomic_open, require_new_dir, write_text
from nnrun.results.journal import journal_clear, journal_done, journal_entry, journal_write, remove_cut_writes
from nnrun.results.manifest import (
    check_resumable,
    check_study_resumable,
    has_manifest,
    is_complete,
    mark_resumed,
    planned,
    read_config,
    read_manifest,
    run_opening,
    stored_chunk_runs,
    study_opening,
    update_manifest,
    write_manifest,
)
from nnrun.results.runs import RUNS, axis_columns, axis_value, cell_runs, has_runs, read_runs, write_runs

__all__ = [
    "CURVES", "PLOTS", "REPORT_HTML", "REPORT_MD", "RUNS", "TABLES", "ResultsError",
    "assemble", "atomic_open", "axis_columns", "axis_value", "cell_runs", "check_resumable", "check_study_resumable",
    "create", "find_results", "has_curves", "has_manifest", "has_runs", "holding", "is_complete",
    "journal_clear", "journal_done", "journal_entry", "journal_write", "listing", "mark_resumed", "new_dir",
    "planned", "read_config", "read_curves", "read_init_weights", "read_manifest", "read_runs", "read_table", "remove_cut_writes",
    "require_new_dir", "require_new_run_dir", "run_opening", "stored_chunk_runs", "study_opening", "table_file", "trained_dataset",
    "update_manifest", "weights_file", "write_manifest", "write_study_table", "write_tables", "write_text",
]  # fmt: skip


def assemble(directory, plan, done: set[int], complete: bool) -> None:
    """runs.csv from the journal's finished chunks; once ``complete``, curves.npz and (with
    ``logging.save_weights``) weights.npz too. Streamed chunk by chunk: memory holds one chunk."""
    write_runs(directory, plan, done)
    if complete and done:
        write_curves(directory, plan, done)
        if plan.config.logging.save_weights:
            write_weights(directory, plan, done)
