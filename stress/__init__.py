"""lazytlb's command line: ``python -m stress run|hunt|compare|bench|list`` (the ``lazytlb`` script)."""

__version__ = "0.1.0"
