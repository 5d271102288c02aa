"""Extract the contracts of the operations the project uses from X's OpenAPI document.

    python -m x_api_simulator.contract.extract path/to/x-api-v2-openapi.json

writes next to this file, for each contract, an OpenAPI document with only its operations, the
parameters and schemas they reference, and every kind of ``Problem`` (the error bodies), with X's
source and version in ``info``: ``search_recent.json`` (``GET /2/tweets/search/recent``) and
``compliance_jobs.json`` (``POST`` and ``GET /2/compliance/jobs``, ``GET /2/compliance/jobs/{id}``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
PATH = "/2/tweets/search/recent"
CONTRACT = HERE / "search_recent.json"
JOBS_PATH = "/2/compliance/jobs"
JOB_PATH = "/2/compliance/jobs/{id}"
COMPLIANCE_CONTRACT = HERE / "compliance_jobs.json"
CONTRACTS = {  # file: (title, the operations as (path, method))
    CONTRACT: (f"GET {PATH} only", [(PATH, "get")]),
    COMPLIANCE_CONTRACT: (
        "the batch compliance jobs only",
        [(JOBS_PATH, "post"), (JOBS_PATH, "get"), (JOB_PATH, "get")],
    ),
}
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


def extract(spec: dict, title: str, operations: list[tuple[str, str]]) -> dict:
    """A contract: the operations and the closure of the components they and ``Problem`` reference."""
    paths: dict[str, dict] = {}
    for path, method in operations:
        paths.setdefault(path, {})[method] = spec["paths"][path][method]
    problem_kinds = spec["components"]["schemas"]["Problem"]["discriminator"]["mapping"].values()
    pending = _references(paths) | set(problem_kinds) | {"#/components/schemas/Problem"}
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
            "title": f"{spec['info']['title']}: {title}",
            "version": spec["info"]["version"],
            "x-source": SOURCE,
            "license": spec["info"]["license"],
        },
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    for contract, (title, operations) in CONTRACTS.items():
        contract.write_text(json.dumps(extract(spec, title, operations), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {contract} (X API v2 OpenAPI {spec['info']['version']})")


if __name__ == "__main__":
    main(sys.argv[1:])
