"""Importing this module imports Keras (and TensorFlow) without the optional libraries Keras loads eagerly.

When matplotlib, scikit-learn or pandas are installed, Keras imports them at its own import, for features the
service never uses (image galleries, scikit-learn wrappers, DataFrame inputs): about 1 s of CPU at every start
(measured: 3.2 -> 2.1 s for TensorFlow + Keras with the project's test extras installed). They are hidden while
Keras is imported and can be imported normally afterwards (the plot route loads matplotlib when first asked).
"""

from __future__ import annotations

import sys

OPTIONAL = ("matplotlib", "sklearn", "pandas")


def import_keras_alone() -> None:
    """Import Keras with OPTIONAL hidden (an import of them fails meanwhile), then unhide them."""
    hidden = [name for name in OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import keras  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


import_keras_alone()
