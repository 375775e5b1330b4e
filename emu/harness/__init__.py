"""The harness: configuration, the runner, perturbation drivers, the report, the matrix, litmus
tests, the testbed, the projection."""
