"""The pytest plugin that wires models/, converters/, compare/ and report/ into a test matrix: options,
markers, parametrization, fixtures and result collection. No numbers, no conversion logic."""
