"""The emulated kernel: the CPU and its loop (``cpu``), the scheduler core (``sched``), the
runqueue (``runqueue``), fork, exec and exit (``tasks``), the mm lifecycle (``mm``), hotplug; the
surface schemes and arch models see (``surface``), what the CPU's mixins use of it (``core``) and
what it asks of a workload (``driver``)."""
