"""The X (Twitter) API for Airflow: TwitterHook and ComplianceJobTrigger."""
