"""The gRPC surface: the servicer (`service`), admission and timing of calls (`admission`),
bearer tokens and scopes (`auth`). May import every room below `runtime`."""
