"""Reports what is wrong in the stream file (include/streams.yaml, or TWEETS_TO_KAFKA_STREAMS) as this
file's import error in the airflow UI, naming the file, the stream and the field. It defines no dag
(Airflow's safe mode parses only files holding both words, lower-case): dags/tweets_to_kafka.py builds
the streams' DAGs, and keeps those of the valid entries, and the last good version of the others, while
the file is fixed."""

from include.streams import running_streams

if problems := running_streams().problems:
    raise ValueError("The stream file has problems, to fix:\n" + "\n".join(problems))
