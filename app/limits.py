"""Request limits, shared by the schemas (documented in OpenAPI) and the runtime checks."""

MIN_STEPS = 60
MAX_STEPS = 5000
MAX_FEATURES = 64
MAX_HORIZON = 150
MAX_WAVES = 256
MAX_ABS_VALUE = 1e12
