"""The benchmark harness behind `actorsrc bench` (see `actorsrc.bench.harness`).

It ships with the package, so the command works from an installed wheel. The peer comparison
(`--compare`) and the plot (`--plot`) need the optional `bench` extra, imported only when asked for.
The repository's benchmarks/ directory keeps longer studies that build on these modules.
"""
