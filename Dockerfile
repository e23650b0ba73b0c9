# The deployment image: Airflow plus this project's pinned requirements and the sa_hygiene package.
# docker-compose.yaml builds it; dags/, plugins/ and include/ are mounted over it for development.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt /opt/sa-hygiene/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/sa-hygiene/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/sa-hygiene/
COPY --chown=airflow:0 include /opt/sa-hygiene/include
# Editable, so that the include/ mounted by docker-compose is what runs.
RUN pip install --no-cache-dir --no-deps -e /opt/sa-hygiene

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
