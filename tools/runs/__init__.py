"""Supervised runs: one detached supervisor per run, a queue that places runs on CPU
slots and GPUs, sandboxes (bubblewrap, Docker), telemetry, and restart recovery.

Modules are small on purpose: ``supervisor`` is started as its own process and must
import little before it launches the child, so heavy imports stay inside functions.
"""
