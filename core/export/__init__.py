"""Stage 5, export: the cleaned dataset in ImageFolder layout, planned from the decisions, then written as
copies, symlinks or a manifest. Imports the stages before it and the shared modules.
"""
