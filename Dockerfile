# The deployment image: Airflow plus this project's locked requirements and the sa_hygiene package.
# docker-compose.yaml builds it once (the airflow-init service) and mounts dags/, plugins/ and
# include/ over what is copied here; on Kubernetes the image runs as it is.
FROM apache/airflow:3.3.2-python3.11

# The official image runs pip as the airflow user; the project folder must be its own so that
# the editable install can write its metadata there.
USER root
RUN mkdir -p /opt/sa-hygiene && chown airflow:0 /opt/sa-hygiene
USER airflow

# The deployment's requirements (requirements.txt, no test tools) at the versions of
# requirements.lock, the ones make test checks; Airflow pinned to the image's own version, so
# that no requirement can move it.
COPY --chown=airflow:0 requirements.txt requirements.lock /opt/sa-hygiene/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/sa-hygiene/requirements.txt -c /opt/sa-hygiene/requirements.lock

COPY --chown=airflow:0 pyproject.toml README.md /opt/sa-hygiene/
COPY --chown=airflow:0 include /opt/sa-hygiene/include
# Editable, so that the include/ docker-compose mounts is what runs.
RUN pip install --no-cache-dir --no-deps -e /opt/sa-hygiene

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

# Bytecode compiled now, for every package Airflow's processes import: a container whose user
# cannot write it (AIRFLOW_UID) would otherwise compile Airflow again in each process, health
# checks included (`airflow jobs check` took 42 s on a fresh container of a busy host).
RUN python -m compileall -q -j 0 "$(python -c 'import airflow, pathlib; print(pathlib.Path(airflow.__file__).parents[1])')" /opt/sa-hygiene/include /opt/airflow/dags /opt/airflow/plugins
