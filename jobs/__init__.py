"""Long-running work (scan, audit, train) as database-tracked jobs run in their own process.

`jobs.runner` creates, spawns, runs and watches jobs; each other module here wires
one kind of job from `core` computations to `db` storage.
"""
