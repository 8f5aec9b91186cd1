"""pytest wiring for the conformance suite: the plugin (options, markers, parametrization of the matrix,
collection rules), its fixtures and how xdist hands out the cases live in harness/; the domain lives in
models/, converters/, compare/ and report/."""
pytest_plugins = ("harness.plugin", "harness.fixtures", "harness.schedule")
