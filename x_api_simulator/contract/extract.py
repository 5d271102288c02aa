"""Extract the contract of ``GET /2/tweets/search/recent`` from X's OpenAPI document.

    python -m x_api_simulator.contract.extract path/to/x-api-v2-openapi.json

writes ``search_recent.json`` next to this file: an OpenAPI document with only that operation, the
parameters and schemas it references, and every kind of ``Problem`` (the error bodies), with X's
source and version in ``info``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PATH = "/2/tweets/search/recent"
CONTRACT = Path(__file__).with_name("search_recent.json")
SOURCE = (
    "X API v2 OpenAPI document as X publishes it for its SDKs: latest-openapi.json of the public "
    "repository github.com/xdevplatform/xdk, taken in November 2026; under X's developer terms"
)


def _references(node: object) -> set[str]:
    """Every ``$ref`` inside a JSON node."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_references(value) for value in node))
    return set()


def extract(spec: dict) -> dict:
    """The contract: the operation and the closure of the components it and ``Problem`` reference."""
    operation = spec["paths"][PATH]["get"]
    problem_kinds = spec["components"]["schemas"]["Problem"]["discriminator"]["mapping"].values()
    pending = _references(operation) | set(problem_kinds) | {"#/components/schemas/Problem"}
    components: dict[str, dict] = {}
    while pending:
        ref = pending.pop()
        _, _, kind, name = ref.split("/")
        if name in components.setdefault(kind, {}):
            continue
        components[kind][name] = spec["components"][kind][name]
        pending |= _references(components[kind][name])
    return {
        "openapi": spec["openapi"],
        "info": {
            "title": f"{spec['info']['title']}: GET {PATH} only",
            "version": spec["info"]["version"],
            "x-source": SOURCE,
            "license": spec["info"]["license"],
        },
        "paths": {PATH: {"get": operation}},
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    CONTRACT.write_text(json.dumps(extract(spec), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {CONTRACT} (X API v2 OpenAPI {spec['info']['version']})")


if __name__ == "__main__":
    main(sys.argv[1:])
