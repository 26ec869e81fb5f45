"""Run a table's checks as a Great Expectations suite on a Spark DataFrame.

One ephemeral GX context per process, with a Data Docs site under the state dir. A table is
validated in two passes: first every expectation in GX's SUMMARY format without sample
values (GX bundles the aggregates into few Spark jobs) through a checkpoint that updates
the Data Docs; then only the row-level ``fail`` expectations that failed, in COMPLETE
format, so GX lists every failing row's key for the quarantine and the Data Docs show the
failing values. Failures are rare, so the second pass is small.

GX does not gate on severity: ``fail`` is written as GX's ``critical`` and ``warn`` as
``warning``, and the gate and quarantine read the check's own severity.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality.checks import Check

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

DOCS_SITE = "datong_quality"
#: Pass 1: counts only. With ``partial_unexpected_count`` 0 GX's sample of failing values is
#: ``limit(0)``, which Spark plans as an empty relation, so each expectation costs no Spark
#: job of its own beyond the bundled aggregates. The default (20) made every expectation a
#: filtered scan of the whole batch, passing or not; that was most of the validation time.
SUMMARY = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
GX_SEVERITY = {"fail": "critical", "warn": "warning"}


class QualityCheckError(RuntimeError):
    """An expectation could not be evaluated: no result is better than a wrong one."""


@dataclass
class CheckResult:
    """What one check found on one table."""

    check: Check
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float
    #: Keys of the failing rows, for a row-level ``fail`` check that failed.
    failing: list[dict[str, Any]] = field(default_factory=list)


def _expectation(check: Check) -> Any:
    import great_expectations as gx

    from quality.expectations import CUSTOM

    kind = CUSTOM.get(check.expectation_type) or getattr(gx.expectations, check.expectation_type)
    meta = {"rule": check.rule, "column": check.column, "datong_severity": check.severity,
            "check": check.key}  # fmt: skip
    return kind(**check.kwargs, severity=GX_SEVERITY[check.severity], meta=meta)


class Validator:
    """An ephemeral GX context whose Data Docs site is ``docs_dir``."""

    def __init__(self, docs_dir: Path):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        docs_dir.mkdir(parents=True, exist_ok=True)
        self.docs_dir = docs_dir
        self.context = gx.get_context(mode="ephemeral")
        # Progress bars would write to the logs of every job and DAG task.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
            },
        )
        self.source = self.context.data_sources.add_spark(name="lake")

    def _batch_definition(self, name: str) -> Any:
        try:
            asset = self.source.get_asset(name)
        except LookupError:
            asset = self.source.add_dataframe_asset(name=name)
        try:
            return asset.get_batch_definition("whole")
        except KeyError:
            return asset.add_batch_definition_whole_dataframe("whole")

    def _suite(self, name: str, checks: list[Check]) -> Any:
        import great_expectations as gx

        for store in (self.context.checkpoints, self.context.validation_definitions,
                      self.context.suites):  # fmt: skip
            # Not there yet (the first run of this table): nothing to replace.
            with contextlib.suppress(Exception):
                store.delete(name)
        suite = self.context.suites.add(gx.ExpectationSuite(name=name))
        for check in checks:
            suite.add_expectation(_expectation(check))
        return suite

    def _run(self, frame: DataFrame, name: str, checks: list[Check], result_format: dict,
             docs: bool) -> list[Any]:  # fmt: skip
        import great_expectations as gx

        suite = self._suite(name, checks)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self._batch_definition(name), suite=suite)
        )
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])]
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[definition],
                          actions=actions if docs else [], result_format=result_format)
        )  # fmt: skip
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        return [r for run in outcome.run_results.values() for r in run.results]

    def validate(
        self, frame: DataFrame, name: str, checks: list[Check], key: list[str],
        cache: bool = True, docs: bool = True,
    ) -> list[CheckResult]:  # fmt: skip
        """Every check's result on ``frame``, with the failing rows' ``key`` where it matters.

        ``cache=False``: the caller has derived ``frame``'s facts, caches it
        (:func:`quality.facts.with_facts`) and uses it again; it is not cached twice.
        ``docs=False``: a check of a few rows outside a batch, kept out of the Data Docs.
        """
        from quality.facts import with_facts

        by_key = {check.key: check for check in checks}
        prepared = with_facts(frame, [d for c in checks for d in c.derived])
        if cache:
            prepared = prepared.persist()
        try:
            raw = self._run(prepared, name, checks, SUMMARY, docs=docs)
            results = {r.expectation_config.meta["check"]: _result(by_key, r) for r in raw}
            wanted = [
                results[c.key].check for c in checks
                if c.row_level and c.severity == "fail" and not results[c.key].success
            ]  # fmt: skip
            if wanted:
                complete = {"result_format": "COMPLETE", "unexpected_index_column_names": key,
                            "return_unexpected_index_query": False}  # fmt: skip
                for item in self._run(prepared, f"{name}.failing", wanted, complete, docs=docs):
                    found = results[item.expectation_config.meta["check"]]
                    rows = item.result.get("unexpected_index_list") or []
                    found.failing = [{k: row.get(k) for k in key} for row in rows]
        finally:
            if cache:
                prepared.unpersist()
        return [results[check.key] for check in checks]

    def build_docs(self) -> Path:
        """Render the Data Docs site; its index page."""
        self.context.build_data_docs(site_names=[DOCS_SITE])
        return self.docs_dir / "index.html"


def _result(by_key: dict[str, Check], raw: Any) -> CheckResult:
    check = by_key[raw.expectation_config.meta["check"]]
    info = raw.exception_info or {}
    # A metric that fails to compute does not raise: GX reports it only here.
    raised = info.get("raised_exception") if isinstance(info, dict) else None
    if raised is None and isinstance(info, dict):
        raised = any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    if raised:
        raise QualityCheckError(f"{check.resource} {check.key} ({check.expectation_type}) "
                                f"could not be evaluated: {info}")  # fmt: skip
    result = raw.result or {}
    count = int(result.get("element_count") or 0)
    unexpected = int(result.get("unexpected_count") or 0)
    observed = result.get("observed_value")
    if check.expectation_type == "ExpectColumnValuesToBeOfType":
        # A schema check: the whole column is or is not of the type.
        unexpected = 0 if raw.success else count
        log.debug("%s observed %s", check.key, observed)
    percent = float(result.get("unexpected_percent") or 0.0)
    return CheckResult(check, bool(raw.success), count, unexpected, percent)
