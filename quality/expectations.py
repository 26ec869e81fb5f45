"""Custom Great Expectations: GB 11643 citizen IDs and GB 32100 credit codes, in Spark.

Each metric's Spark condition is the bronze rule's own expression (``jobs.rules``), so the
suite and ingest agree by construction; the unit tests check both against python-stdnum.
Importing this module imports GX (seconds): import it only where a validation runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from jobs.rules import valid_citizen_id, valid_credit_code


class ColumnValuesValidCitizenId(ColumnMapMetricProvider):
    """True where the value is an 18-character GB 11643 number with a real birth date."""

    condition_metric_name = "column_values.datong_valid_citizen_id"

    @column_condition_partial(engine=SparkDFExecutionEngine)  # type: ignore[misc]
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return valid_citizen_id(column)


class ColumnValuesValidCreditCode(ColumnMapMetricProvider):
    """True where the value is a GB 32100 code with the right check character."""

    condition_metric_name = "column_values.datong_valid_credit_code"

    @column_condition_partial(engine=SparkDFExecutionEngine)  # type: ignore[misc]
    def _spark(cls, column: Any, **kwargs: Any) -> Any:
        return valid_credit_code(column)


class ExpectColumnValuesToBeValidCitizenId(ColumnMapExpectation):
    """Expect values to be valid citizen ID numbers (公民身份号码, GB 11643-1999)."""

    map_metric = "column_values.datong_valid_citizen_id"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["datong", "GB 11643"]}


class ExpectColumnValuesToBeValidCreditCode(ColumnMapExpectation):
    """Expect values to be unified social credit codes (统一社会信用代码, GB 32100-2015)."""

    map_metric = "column_values.datong_valid_credit_code"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["datong", "GB 32100"]}


CUSTOM = {
    "ExpectColumnValuesToBeValidCitizenId": ExpectColumnValuesToBeValidCitizenId,
    "ExpectColumnValuesToBeValidCreditCode": ExpectColumnValuesToBeValidCreditCode,
}
