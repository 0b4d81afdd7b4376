"""Contract suites any backend can run, importable by third-party backends."""
