"""lazytlb's emulated SMP machine, in layers, bottom up; each imports only the ones below it
(``tests/kernel/test_surface.py`` checks):

- ``machine``    the shared segment and its layout, the atomics and memory models, interrupts and
                 IPIs, trace rings, noise, the deterministic scheduler's hand-over
- ``checks``     the scheme-agnostic oracle (use-after-free, leaks, ...) and the watchdog
- ``kernel``     one emulated CPU: its loop, the scheduler core (``schedule`` ->
                 ``context_switch`` -> ``finish_task_switch``), the mm lifecycle, hotplug; the
                 surface schemes and arch models see (``kernel.surface``) and the workload's
                 interface (``kernel.driver``)
- ``arch``       how each architecture keeps ``mm_cpumask`` and flushes, on the kernel's hooks
- ``strategies`` the lazy-TLB schemes, one per file, on the kernel's hooks
- ``workload``   what tasks do, drawn from the seed: the drivers
- ``harness``    configuration, the runner, perturbation drivers, the report, the matrix, litmus
                 tests, the testbed, the projection
"""
