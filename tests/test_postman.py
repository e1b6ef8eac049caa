"""postman/*.json are what postman/build_collection.py writes (edit the script, then run it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

POSTMAN = Path(__file__).resolve().parents[1] / "postman"


def test_collection_json_is_up_to_date_with_its_source() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_collection", POSTMAN / "build_collection.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.render().items():
        assert (POSTMAN / name).read_text() == text, (
            f"run: python postman/build_collection.py ({name})"
        )


def test_collection_covers_every_operation_of_the_openapi_document(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    collection = json.loads((POSTMAN / "loyalty.postman_collection.json").read_text())
    covered = {
        (item["request"]["method"].lower(), _shape(item["request"]["url"]["path"]))
        for item in collection["item"]
    }
    for path, ops in spec["paths"].items():
        for method in ops:
            if method == "parameters":
                continue
            shape = _shape(path.strip("/").split("/"))
            assert (method, shape) in covered, f"no Postman request for {method.upper()} {path}"


def _shape(segments: list[str]) -> tuple[str, ...]:
    """Path segments with every parameter ({x} or {{x}}) replaced by '*'."""
    return tuple("*" if seg.startswith("{") else seg for seg in segments)
