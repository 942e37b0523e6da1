"""The demo datasets: listing photos, sketches and Fashion-MNIST items with planted problems and an answer key.

Nothing in the pipeline imports it: only the CLI's `demo` command, the benchmarks and the tests. Imports only
the shared modules of core.
"""
