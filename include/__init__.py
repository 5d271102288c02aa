"""The plain-Python logic of the tweets_to_kafka DAGs, which tests import without a scheduler."""

import os
from pathlib import Path


def state_folder() -> Path:
    """`$AIRFLOW_HOME/tweets_to_kafka`: what the package keeps on the disk of a machine that runs it (the last good
    stream file; the window store, unless it is elsewhere)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return Path(home).absolute() / "tweets_to_kafka"
