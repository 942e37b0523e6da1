"""Stage 1, scan: a dataset folder's class folders and listings.csv, each file decoded and hashed, copies found.

Owns walking the folder (never outside it), reading files safely, the listings table, the pHash index and the
duplicate groups every later stage keeps together. Imports only the shared modules of core.
"""
