"""The repository and its docker files hold no real secret: every tracked file is scanned for the shapes of
real credentials, and the compose and .env files for secrets written in rather than taken from .env."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import ROOT

# Shapes of real credentials: an X app bearer token, OAuth 1.0a-style tokens, a Fernet key, private keys,
# and the tokens of the clouds and forges a developer is likely to paste by mistake.
REAL_SECRET_SHAPES = {
    "X bearer token": r"A{20,}[A-Za-z0-9%]{30,}",
    "X OAuth access token": r"\b\d{6,20}-[A-Za-z0-9]{35,}\b",
    "Fernet key": r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9=])",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "AWS access key": r"\bAKIA[0-9A-Z]{16}\b",
    "GitHub token": r"\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}",
    "Slack token": r"\bxox[abpr]-[A-Za-z0-9-]{10,}",
}
DOCKER_FILES = ("Dockerfile", "docker-compose.yaml", ".env.example")


def tracked_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def secrets_in(text: str) -> list[str]:
    """Names of the real-credential shapes found in a text."""
    return [name for name, shape in REAL_SECRET_SHAPES.items() if re.search(shape, text)]


@pytest.mark.parametrize(
    "planted",
    [
        "A" * 22 + "%2Fq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9",
        "1234567890-" + "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0",
        "y1Q2w3E4r5T6y7U8i9O0p1A2" + "s3D4f5G6h7J8k9L0z1X=",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AKIA" + "Q1W2E3R4T5Y6U7I8",
        "ghp_" + "q1w2e3r4t5y6u7i8o9p0a1s2",
    ],
    ids=["bearer", "oauth-token", "fernet", "private-key", "aws", "github"],
)
def test_the_scan_finds_a_planted_secret(planted):
    """The scan below would see a real credential (built here at run time, never stored whole)."""
    assert secrets_in(f"password: {planted}\n")


def test_no_tracked_file_holds_a_real_credential():
    found = {
        path: secrets_in(text)
        for path in tracked_files()
        if (ROOT / path).is_file() and (text := (ROOT / path).read_text(errors="replace"))
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_docker_files_take_secrets_from_env_and_env_is_not_tracked():
    assert ".env" not in tracked_files()
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    compose = (ROOT / "docker-compose.yaml").read_text()
    assert re.search(r"FERNET_KEY: \$\{AIRFLOW_FERNET_KEY:\?", compose)
    assert re.search(r"JWT_SECRET: \$\{AIRFLOW_JWT_SECRET:\?", compose)
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^\w+=", line)
    )
    assert example["AIRFLOW_FERNET_KEY"] == "" and example["AIRFLOW_JWT_SECRET"] == ""
    assert '"password": "sim-token"' in example["AIRFLOW_CONN_TWITTER_DEFAULT"], "the simulator's token only"
    for path in DOCKER_FILES:
        assert secrets_in((ROOT / path).read_text()) == [], path
