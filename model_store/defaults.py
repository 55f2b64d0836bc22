"""The defaults the service and the training CLI share: the committed store and the default model's name.

Numpy-free and import-light, so `app/` and `training/` can both read them without importing each other.
"""

from pathlib import Path

DEFAULT_STORE = Path(__file__).resolve().parent  # the committed store: this package's folder
DEFAULT_MODEL = "general"  # the model that answers requests naming none
