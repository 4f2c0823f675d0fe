"""What every room may use: settings (`config`), Prometheus metrics, logging, the event loop
choice, certificates, and the coalescer that gathers concurrent callers into batches. Imports
no other room."""
