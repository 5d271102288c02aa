"""Parse one DAG file in this fresh interpreter and print the times as JSON (each as wall seconds, `..._s`,
and CPU seconds of this process, `..._cpu_s`).

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


def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) now."""
    return time.perf_counter(), time.process_time()


def elapsed(since: tuple[float, float], name: str) -> dict[str, float]:
    now = clock()
    return {f"{name}_s": now[0] - since[0], f"{name}_cpu_s": now[1] - since[1]}


def cold(path: str) -> dict[str, float]:
    began = clock()
    spec = importlib.util.spec_from_file_location("dag_file_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return elapsed(began, "parse")


def dag_processor(path: str) -> dict[str, float]:
    import airflow.dag_processing.manager  # noqa: F401  (loaded in the dag-processor before it forks)
    import airflow.dag_processing.processor  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports

    began = clock()
    for module in iter_airflow_imports(path):
        importlib.import_module(module)
    pre_import = elapsed(began, "pre_import")
    began = clock()
    bag = DagBag(dag_folder=path, collect_dags=False, load_op_links=False)
    dags = bag.process_file(path)
    parse = elapsed(began, "parse")
    if bag.import_errors or not dags:
        raise SystemExit(f"{path} did not parse into a DAG: {bag.import_errors}")
    return {**pre_import, **parse}


if __name__ == "__main__":
    mode, dag_file = sys.argv[1:3]
    print(RESULT_PREFIX + json.dumps({"cold": cold, "dag-processor": dag_processor}[mode](dag_file)))
