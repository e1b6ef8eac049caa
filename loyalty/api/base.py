"""flask-smorest's Api and Blueprint, with our error shape and pagination headers."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Api, Blueprint
from flask_smorest.spec import prepare_response
from werkzeug.exceptions import HTTPException

from loyalty.errors import PROBLEM_MIMETYPE, http_error_response


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, with our stable `code` and per-field `errors`."""

    type = ma.fields.String(required=True, metadata={"example": "urn:loyalty:problem:not_found"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    code = ma.fields.String(
        required=True, metadata={"description": "Stable machine-readable error code"}
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        required=True,
        metadata={"description": "Messages per field at fault"},
    )


class LoyaltyApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return http_error_response(error)

    def _register_responses(self) -> None:
        """As flask-smorest's, but errors are documented as application/problem+json."""
        import http

        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class LoyaltyBlueprint(Blueprint):
    """Pagination metadata in `X-Pagination` (flask-smorest's) and `X-Total-Count`."""

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
