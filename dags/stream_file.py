"""Reports what is wrong in the stream file (include/streams.yaml, or TWEETS_TO_KAFKA_STREAMS) as this
file's import error in the airflow UI, naming the file, the stream and the field. It defines no dag
(Airflow's safe mode parses only files holding both words, lower-case): dags/tweets_to_kafka.py builds
the streams' DAGs, and keeps those of the valid entries while a bad one is fixed."""

from include.streams import read_streams

if problems := read_streams().problems:
    raise ValueError("The stream file has bad entries, left out until fixed:\n" + "\n".join(problems))
