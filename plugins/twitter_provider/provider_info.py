"""Provider metadata that Airflow reads through the `apache_airflow_provider` entry point.

It declares the `twitter` connection type with the form of Airflow 3.2+ (`conn-fields`,
`ui-field-behaviour`), so the UI offers "X (Twitter)" without importing the hook.
"""

from __future__ import annotations

from typing import Any

PASSWORD = {"type": ["string", "null"], "format": "password"}  # shown masked, stored as a secret


def get_provider_info() -> dict[str, Any]:
    """Return the provider's info, in the layout of Airflow's provider.yaml."""
    return {
        "package-name": "tweets-to-kafka-x-provider",
        "name": "X (Twitter)",
        "description": "X API v2 recent search and batch compliance through tweepy, for the DAG tweets-to-kafka.",
        "versions": ["1.0.0"],
        "hooks": [{"integration-name": "X (Twitter)", "python-modules": ["twitter_provider.hooks"]}],
        "triggers": [{"integration-name": "X (Twitter)", "python-modules": ["twitter_provider.triggers"]}],
        "connection-types": [
            {
                "connection-type": "twitter",
                "hook-class-name": "twitter_provider.hooks.TwitterHook",
                "hook-name": "X (Twitter)",
                "conn-fields": {
                    "consumer_key": {
                        "label": "OAuth 1.0a consumer key (API key)",
                        "schema": {"type": ["string", "null"]},
                        "description": "Only for user context; leave the four OAuth fields empty with a bearer token.",
                    },
                    "consumer_secret": {
                        "label": "OAuth 1.0a consumer secret (API key secret)",
                        "schema": PASSWORD,
                    },
                    "access_token": {"label": "OAuth 1.0a access token", "schema": PASSWORD},
                    "access_token_secret": {"label": "OAuth 1.0a access token secret", "schema": PASSWORD},
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"password": "Bearer token", "host": "API base URL"},
                    "placeholders": {
                        "password": "app-only bearer token of the X developer app",
                        "host": "empty for https://api.twitter.com, e.g. http://127.0.0.1:8099 for the simulator",
                    },
                },
            }
        ],
    }
