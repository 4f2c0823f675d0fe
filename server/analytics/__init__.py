"""Reports read from the statistics the decisions count: the action report (outcomes against the
holdout). May import `core`, `store`, `protocol`, `decisions` and `rules`; `api` serves it."""
