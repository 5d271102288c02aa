"""Benchmarks of the tweets_to_kafka package against the real broker and the X API simulator: `make bench`."""
