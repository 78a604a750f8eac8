import pytest

# Assertions in the shared test support report their values, as the tests' own do.
pytest.register_assert_rewrite("support")

# Fixtures that several feature folders use; pytest honours `pytest_plugins` only here.
pytest_plugins = ["support.builtin_plugins", "support.fake_nvml", "support.navarch_process"]
