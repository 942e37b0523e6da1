"""Stage 3, audit: the checks (broken, quality, duplicate, mislabel, price), the mislabel evidence and its
combiner, out-of-fold classifiers, and what accepting the flags decides. Imports core.scan, core.models and
the shared modules.
"""
