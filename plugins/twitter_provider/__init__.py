"""The X (Twitter) API for Airflow: TwitterHook and ComplianceJobTrigger."""

from datetime import timedelta

SEARCH_HORIZON = timedelta(days=7)  # how far back X's recent search reaches
