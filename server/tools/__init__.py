"""What people and probes run: the `journeyman` command line (`cli`), `journeyman status`,
the container health check (`healthcheck`). May import every room."""
