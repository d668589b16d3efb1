"""Results: the table's schema, its storage (journal, Parquet, CSV, run.json), importers of asv's
and pytest-benchmark's results, and merging shards.

``segbench.results.load``, ``ResultWriter``, ``from_asv`` and ``from_pytest_benchmark`` (and the
rest of :mod:`segbench.results.storage` and :mod:`segbench.results.schema`) are available here,
as before the package had folders.
"""

from segbench._lazy import package_dir, package_getattr

_EXPORTS = {
    "from_asv": "segbench.results.importers",
    "from_pytest_benchmark": "segbench.results.importers",
}


__getattr__ = package_getattr(__name__, _EXPORTS, every_name_of=("segbench.results.storage", "segbench.results.schema"))
__dir__ = package_dir(__name__, _EXPORTS)
