"""Run the X API simulator until SIGTERM or SIGINT::

    python -m x_api_simulator --port 8099 [--host 127.0.0.1] [--bearer-token sim-token] [--tier pro]
        [--rate-per-minute 40] [--seed 1] [--rate-limit N] [--rate-limit-window 900]
        [--searchable-after 30] [--search-horizon 604800] [--edit-rate 0] [--empty-page-rate 0]
        [--usage-cap N] [--credits N] [--compliance-rate 0] [--compliance-processing 5]
        [--compliance-rate-limit 150] [--compliance-upload-ttl 900] [--compliance-download-ttl 604800]

Every flag can also be set by an environment variable (``X_SIM_PORT``, ``X_SIM_BEARER_TOKEN``,
``X_SIM_TIER``, ...); flags win.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from x_api_simulator.simulator import TIERS, XApiSimulator

_OPTIONS = (
    ("host", "127.0.0.1", str, "address to listen on"),
    ("port", "8099", int, "port to listen on (0: a free one)"),
    ("bearer-token", "sim-token", str, "accepted app bearer token"),
    ("tier", "pro", str, f"access tier whose rate limits apply: {', '.join(TIERS)}"),
    ("rate-per-minute", "40", int, "posts generated per minute"),
    ("seed", "1", int, "seed of the generated data"),
    ("rate-limit", None, int, "requests per window for every credential instead of the tier's"),
    ("rate-limit-window", "900", int, "rate-limit window in seconds"),
    ("oauth-consumer-key", "sim-consumer-key", str, "accepted OAuth 1.0a consumer key"),
    ("oauth-access-token", "sim-access-token", str, "accepted OAuth 1.0a access token"),
    ("searchable-after", "30", float, "seconds from a post's creation until search finds it"),
    ("search-horizon", "604800", float, "how far back, in seconds, start_time may reach (7 days)"),
    ("edit-rate", "0", float, "share of posts edited once, 1 to 30 minutes after creation"),
    (
        "empty-page-rate",
        "0",
        float,
        "chance of a page to come empty with a next_token (at most one a search)",
    ),
    ("usage-cap", None, int, "posts read before every search gets 429 UsageCapExceeded"),
    ("credits", None, int, "distinct posts a UTC day may bill before every search gets 402"),
    (
        "compliance-rate",
        "0",
        float,
        "share of posts with a compliance event 1 to 60 minutes after creation",
    ),
    ("compliance-processing", "5", float, "seconds a compliance job stays in_progress after its upload"),
    ("compliance-rate-limit", "150", int, "requests per rate-limit window to each compliance endpoint"),
    ("compliance-upload-ttl", "900", float, "seconds a compliance job's upload URL lives"),
    ("compliance-download-ttl", "604800", float, "seconds a compliance job's download URL lives"),
)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m x_api_simulator", description="X API v2 recent-search and batch-compliance simulator."
    )
    for name, default, kind, description in _OPTIONS:
        env = "X_SIM_" + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}", type=kind, default=os.environ.get(env, default), help=f"{description} (env {env})"
        )
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    with XApiSimulator(**vars(args)) as simulator:
        print(f"X API simulator listening on {simulator.url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
