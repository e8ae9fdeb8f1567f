pytest_plugins = ["gostx.testing.pytest_plugin"]
