"""The machine: the shared segment and its layout, the atomics and memory models, interrupts,
trace rings, noise, and the deterministic scheduler's hand-over."""
