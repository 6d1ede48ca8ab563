"""The side-by-side benchmark (`make bench`): baselines, load runs and the RESULTS.md report."""
