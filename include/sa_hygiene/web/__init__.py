"""What people open: the hygiene report and its page in the Airflow UI, Data Docs, and the
Slack app that acts on what a message names. Pages read; they do not run pipeline steps."""
