"""Stage 2, models: the image models both the audit and training runs use.

Owns the torchvision backbones and their offline weights, the views and embeddings of frozen backbones, the
inference runtimes, the decoded-image cache and batches, the epoch loop, fitting, checkpoints and metrics.
Imports core.scan and the shared modules.
"""
