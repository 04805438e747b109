"""Lane-side edge appliance for Vietnam-China smart road border gates."""

from appliance import runtime_env as _runtime_env

_runtime_env.apply()

__version__ = "0.1.0"
