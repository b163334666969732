"""The ``dosmatgen`` command line: thin wrappers over library functions."""
