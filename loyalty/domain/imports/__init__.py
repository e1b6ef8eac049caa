"""Import of purchase history from CSV, so the metrics mean something on day one.

Three steps, each a module: `parse` reads the header and checks and converts each row (amounts
exact in the programme's currency, points as `earning.awards_for_purchase` gives a live purchase);
`batch` groups the rows into batches (a batch with a bad row is not written at all, every bad
line is reported) and runs the caller's writer over the good ones, on a thread of its own where
asked; `write` writes one batch in the caller's transaction, the direct way or the staging way
(see there). Nothing here commits: the caller begins and commits each batch (the CLI command
`import-purchases` does), so that a batch is one transaction, written whole or not at all.
"""

from loyalty.domain.imports.batch import (
    BATCH_ROWS,
    MAX_REPORTED_ERRORS,
    ImportResult,
    batches,
    write_batches,
)
from loyalty.domain.imports.parse import (
    CsvRows,
    HeaderError,
    ProgramRates,
    Row,
    RowError,
    RowParser,
)
from loyalty.domain.imports.write import (
    IMPORT_ACTOR,
    ImportReferenceError,
    Target,
    Written,
    prepare,
    write_batch,
)

__all__ = [
    "BATCH_ROWS",
    "IMPORT_ACTOR",
    "MAX_REPORTED_ERRORS",
    "CsvRows",
    "HeaderError",
    "ImportReferenceError",
    "ImportResult",
    "ProgramRates",
    "Row",
    "RowError",
    "RowParser",
    "Target",
    "Written",
    "batches",
    "prepare",
    "write_batch",
    "write_batches",
]
