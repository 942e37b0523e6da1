"""Stage 4, train: a training run on the dataset's current labels, its evaluation split, how long it will take,
and two runs compared on common ground. Imports core.scan, core.models, core.audit and the shared modules.
"""
