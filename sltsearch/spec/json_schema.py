"""The spec as a JSON Schema, generated from the pydantic models (`sltsearch.spec.schema`), never written twice.

Editors that speak the YAML language server (VS Code's YAML extension, JetBrains, Neovim) complete and check a
spec file against it when the file starts with ``# yaml-language-server: $schema=<path or URL>``; the bundled
spaces point at ``search_spaces/spec.schema.json``, which is this function's output (`sltsearch schema`, a
test keeps the two equal). The schema holds every field's type, default, range, allowed values and
description; rules between fields (``rewind_epoch < epochs``, the searched corners of ``space``) are beyond
it: ``sltsearch validate`` checks those.
"""

from __future__ import annotations

import json
from typing import Any

from sltsearch.spec.schema import Spec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "spec.schema.json"  # beside the bundled spaces
HEADER = f"# yaml-language-server: $schema={SCHEMA_FILE}"  # the first line of every bundled space


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file."""
    schema = Spec.model_json_schema(mode="validation")
    schema["title"] = "sltsearch spec"
    schema["description"] = (
        "A search spec of sltsearch (generated from its pydantic models by `sltsearch schema`). Rules between "
        "fields are checked by `sltsearch validate`, not by this schema."
    )
    return {"$schema": DIALECT, **schema}


def spec_json_schema_text() -> str:
    """`spec_json_schema` as the text `sltsearch schema` prints and ``search_spaces/spec.schema.json`` holds."""
    return json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"
