"""XLA settings for serving, kept free of TensorFlow imports so they can be applied before TensorFlow starts."""

from __future__ import annotations

import os

# XLA:CPU hands matrix products to YNNPACK, which splits them over every core: for this model's small products a
# call then keeps ~1.7 cores busy for the speed of one (measured), and two calls side by side go no faster.
# Without it a call stays on one core, and one call per core runs in parallel.
ONE_CORE_PER_CALL = "--xla_cpu_experimental_ynn_fusion_type="


def keep_calls_on_one_core() -> None:
    """Add ONE_CORE_PER_CALL to XLA_FLAGS (effective only before the process compiles anything with XLA)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {ONE_CORE_PER_CALL}".strip()
