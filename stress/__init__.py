"""lazytlb's command line: ``python -m stress run|list``."""
