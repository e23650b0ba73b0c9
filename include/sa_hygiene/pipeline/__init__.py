"""The steps DAGs and commands run, one module per DAG family, each a plain function of the
configuration: the scheduler and the command line share one code path, and every step is
tested without Airflow."""
