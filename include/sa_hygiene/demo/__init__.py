"""The demo: a generated Salesforce org and a day of the real DAGs run on it (``make demo``)."""
