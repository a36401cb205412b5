"""Running notebooks in a sandbox and comparing their fresh outputs with the submitted ones."""
