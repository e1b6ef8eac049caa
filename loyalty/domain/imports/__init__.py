"""Import of purchase history from CSV, so the metrics mean something on day one.

Four steps, each a module: `source` finds the file's encoding (or takes the one given) and proves
every byte decodes before a row is read; `parse` reads the header (finding the delimiter) and
checks and converts each row (amounts exact in the programme's currency, with a decimal point or
a decimal comma, points as `earning.awards_for_purchase` gives a live purchase);
`batch` groups the rows into batches (a batch with a bad row is not written at all, every bad
line is reported) and runs the caller's writer over the good ones, on a thread of its own where
asked; `write` writes one batch in the caller's transaction, the direct way or the staging way
(see there), or, for a check (`check_batch`), works out what it would write, writing nothing.
Nothing here commits: the caller begins and commits each batch (the CLI command
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
    DELIMITERS,
    CsvRows,
    HeaderError,
    ImportFileError,
    ProgramRates,
    Row,
    RowError,
    RowParser,
)
from loyalty.domain.imports.source import Encoding, codec_name, detect, seekable, size, text
from loyalty.domain.imports.write import (
    IMPORT_ACTOR,
    ImportReferenceError,
    Preview,
    Target,
    Written,
    check_batch,
    prepare,
    prepare_check,
    write_batch,
)

__all__ = [
    "BATCH_ROWS",
    "DELIMITERS",
    "IMPORT_ACTOR",
    "MAX_REPORTED_ERRORS",
    "CsvRows",
    "Encoding",
    "HeaderError",
    "ImportFileError",
    "ImportReferenceError",
    "ImportResult",
    "Preview",
    "ProgramRates",
    "Row",
    "RowError",
    "RowParser",
    "Target",
    "Written",
    "batches",
    "check_batch",
    "codec_name",
    "detect",
    "prepare",
    "prepare_check",
    "seekable",
    "size",
    "text",
    "write_batch",
    "write_batches",
]
