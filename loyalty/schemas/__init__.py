"""marshmallow request/response schemas, per resource."""
