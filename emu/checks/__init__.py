"""The checks: the scheme-agnostic oracle and the watchdog."""
