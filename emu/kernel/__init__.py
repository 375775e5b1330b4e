"""The emulated kernel: the CPU loop, the scheduler core, the mm lifecycle, hotplug."""
