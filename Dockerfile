# The project's Airflow image: the official apache/airflow image of the version pinned in requirements.txt,
# on the Python the project is tested with, plus the project's requirements installed at build time (not at
# container start). dags/, plugins/ and include/ are mounted by docker-compose.yaml, not copied.
FROM apache/airflow:3.3.2-python3.11

WORKDIR /opt/airflow
# requirements.txt installs plugins/ (the X provider) editable from ./plugins: its metadata goes into the
# image, its code is the mounted folder at run time.
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
# As Airflow's docs advise for an extended image: the pinned apache-airflow stays as the image has it.
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt
# The window store's volume (docker-compose.yaml) takes this folder's owner, the airflow user.
RUN mkdir -p /opt/airflow/windows
