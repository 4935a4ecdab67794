"""A fake plugin whose import fails."""

import txsim_nonexistent_dependency  # noqa: F401
