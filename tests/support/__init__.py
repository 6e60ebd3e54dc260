"""What the tests share besides fixtures (those are in ``tests/conftest.py``): apps and servers
started their own way, API calls that set a scene, readers of what comes back. Tests import from
here and from ``tests.conftest``, never from another test module."""
