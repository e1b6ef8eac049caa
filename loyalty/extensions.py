"""Extensions, created here and bound to the app in `create_app`."""

from __future__ import annotations

import contextvars
import http
from typing import Any

from flask_migrate import Migrate
from flask_smorest import Api
from flask_smorest.spec import prepare_response
from flask_sqlalchemy import SQLAlchemy

from loyalty.models.base import Base
from loyalty.schemas.common import PROBLEM_MIMETYPE, ProblemSchema


class LoyaltyApi(Api):
    """flask-smorest's Api, with errors documented as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = LoyaltyApi()

#: Read by the SQLite BEGIN hook: a write transaction takes the write lock up front
#: (BEGIN IMMEDIATE), so read-then-write cannot interleave between app servers.
write_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_transaction", default=False
)
