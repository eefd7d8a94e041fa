from tests.server.conftest import workspace  # noqa: F401  (the sample workspace fixture)
