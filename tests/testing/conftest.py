# The example provider is a distribution of its own, with its own tests: test_example_provider.py
# installs it and runs them.
collect_ignore = ["example_provider"]
