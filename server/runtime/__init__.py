"""The process: the gRPC server with health and reflection (`app`), `journeyman serve`
(`serve`, one process in `serving`, `--workers` in `workers`), the embedded Redis. May import
every room but `tools`."""
