"""Parse one DAG file in this fresh interpreter and print the times as JSON.

python -m bench.parse_probe cold DAG_FILE
    `parse_s`: from nothing imported to the file's DAG built, as `python DAG_FILE` or a first parse.
python -m bench.parse_probe dag-processor DAG_FILE
    As a dag-processor's parsing process: Airflow's parsing machinery is already loaded, and so are
    the file's `airflow.*` imports, which the dag-processor imports once before it forks its parsing
    processes ([dag_processor] parsing_pre_import_modules): `pre_import_s` is that import,
    `parse_s` the parse of the file itself, which each parsing process pays.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time

RESULT_PREFIX = "PARSE "


def cold(path: str) -> dict[str, float]:
    began = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dag_file_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"parse_s": time.perf_counter() - began}


def dag_processor(path: str) -> dict[str, float]:
    import airflow.dag_processing.manager  # noqa: F401  (loaded in the dag-processor before it forks)
    import airflow.dag_processing.processor  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports

    began = time.perf_counter()
    for module in iter_airflow_imports(path):
        importlib.import_module(module)
    pre_imported = time.perf_counter()
    bag = DagBag(dag_folder=path, collect_dags=False, load_op_links=False)
    dags = bag.process_file(path)
    parsed = time.perf_counter()
    if bag.import_errors or not dags:
        raise SystemExit(f"{path} did not parse into a DAG: {bag.import_errors}")
    return {"pre_import_s": pre_imported - began, "parse_s": parsed - pre_imported}


if __name__ == "__main__":
    mode, dag_file = sys.argv[1:3]
    print(RESULT_PREFIX + json.dumps({"cold": cold, "dag-processor": dag_processor}[mode](dag_file)))
