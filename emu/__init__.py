"""lazytlb's emulated SMP machine.

Layers, bottom up (strategies only ever see the kernel-named surfaces):

- ``config``     what a run is: CPUs, scheme, workload knobs, seed
- ``layout``     where every field lives in the shared int64 segment
- ``shm``        creating, checking, sweeping and unlinking that segment
- ``atomics``    lock-based emulation of the kernel's atomic API
- ``irq``        soft interrupt mask, IPI mailboxes, ``smp_call_function_*``
- ``trace``      per-CPU event rings stamped with a global clock
- ``oracle``     the scheme-agnostic checker (use-after-free, leaks, ...)
- ``mm``         the mm lifecycle: ``mmget``/``mmput``/``mmdrop``/``__mmdrop``
- ``arch``       how an architecture maintains ``mm_cpumask`` in ``switch_mm``
- ``sched``      ``schedule`` -> ``context_switch`` -> ``finish_task_switch``
- ``cpu``        one emulated CPU: a process running the scheduler loop
- ``runner``     starts the CPUs, supervises them, collects the report
- ``report``     the report: metrics, violations, their timelines
- ``columns``    an interleaving drawn a column per CPU, as text or SVG
- ``strategies`` the lazy-TLB schemes, one per file
"""
