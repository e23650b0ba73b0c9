# The deployment image: Airflow plus this project's pinned requirements and the sa_hygiene package.
# docker-compose.yaml builds it and mounts dags/, plugins/ and include/ over what is copied here;
# on Kubernetes the image runs as it is.
FROM apache/airflow:3.3.2-python3.11

# The official image runs pip as the airflow user; the project folder must be its own so that
# the editable install can write its metadata there.
USER root
RUN mkdir -p /opt/sa-hygiene && chown airflow:0 /opt/sa-hygiene
USER airflow

# Airflow pinned to the image's own version, so that no requirement can move it.
COPY --chown=airflow:0 requirements.txt /opt/sa-hygiene/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/sa-hygiene/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/sa-hygiene/
COPY --chown=airflow:0 include /opt/sa-hygiene/include
# Editable, so that the include/ docker-compose mounts is what runs.
RUN pip install --no-cache-dir --no-deps -e /opt/sa-hygiene

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
