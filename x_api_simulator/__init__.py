"""A stand-in for the X API v2 recent search (``GET /2/tweets/search/recent``) and batch compliance
(``/2/compliance/jobs``) over real HTTP, held to X's OpenAPI contract; used by the tests, the offline
demo and the benchmarks, never deployed.

Posts are generated per UTC minute, deterministically from (seed, minute), whatever the time or the
order of the requests; queries are evaluated (``query.py``); compliance events and jobs are in
``compliance.py``. Run it with ``python -m x_api_simulator``.
"""

from x_api_simulator.simulator import XApiSimulator

__all__ = ["XApiSimulator"]
