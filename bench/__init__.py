"""The benchmark of issue #4: ``python -m bench`` (``make bench``).

Modules, one concern each:
    run       command line and the order of the phases
    loadgen   deterministic contacts and Generate events (the backlog, the latency probes)
    infra     servers, per-run names, topics and offsets
    phases    phase 0 (load), 1 (aiokafka ceiling), 2 (the worker on the backlog)
    latency   phase 3 (open-loop load, end-to-end latency)
    worker    the worker subprocess: readiness, memory, counters, table on disk
    report    the JSON result, the table, the plot
"""
