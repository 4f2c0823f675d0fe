"""What people and probes run: the `journeyman` command line (`cli`), `journeyman status`,
the container health check (`healthcheck`), and the readers of recorded event logs
(`event_logs`: where they live, the BPIC 2012 log, decided offline). May import every room."""
