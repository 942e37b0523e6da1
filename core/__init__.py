"""The pipeline, without Streamlit or a database: arrays and DataFrames in, arrays and DataFrames out.

Stages, each a package that may import the ones before it and the shared modules here, never one after it:
scan (folders, files, hashes, copies) -> models (image models both the audit and training use) -> audit
(checks, evidence, flags) -> train (training runs on the corrected labels, their comparison) -> export.
`demo` builds the demo datasets and imports only the shared modules. Shared by every stage: imaging (decode
and measure one image), csvsafe (spreadsheet-safe CSV cells), executors (local processes or Ray), progress.
docs/architecture.md draws the stages and what flows between them.
"""
