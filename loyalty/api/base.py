"""flask-smorest's Blueprint with our pagination headers, and the page window helper."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from loyalty.api.body import BodyParser


class LoyaltyBlueprint(Blueprint):
    """Bodies read by `BodyParser` (strict JSON, 415 for another Content-Type); pagination
    metadata in `X-Pagination` (flask-smorest's) and `X-Total-Count`."""

    ARGUMENTS_PARSER = BodyParser()

    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 20, "max_page_size": 100}

    def _set_pagination_metadata(self, page_params: Any, result: Any, headers: Any) -> Any:
        result, headers = super()._set_pagination_metadata(page_params, result, headers)
        headers["X-Total-Count"] = str(page_params.item_count)
        return result, headers

    def _document_pagination_metadata(self, spec: Any, resp_doc: Any) -> None:
        resp_doc.setdefault("headers", {}).update(
            {
                "X-Pagination": {
                    "description": "JSON object: total, total_pages, first_page, last_page, "
                    "page, previous_page, next_page",
                    "schema": {"type": "string"},
                },
                "X-Total-Count": {
                    "description": "Total number of items",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            }
        )


#: Pages beyond this are empty (keeps OFFSET within what any database accepts).
MAX_PAGE = 1_000_000


def page_window(pagination_parameters: Any) -> tuple[int, int]:
    """(offset, limit) for flask-smorest's pagination parameters."""
    if pagination_parameters.page > MAX_PAGE:
        return 0, 0
    return pagination_parameters.first_item, pagination_parameters.page_size
