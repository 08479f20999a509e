"""Exit codes of every `xenoflow` command: 0 ok, 1 found something (drift, fallback,
a failed demo, a lab not fully up), 2 could not do what was asked (bad config, missing
tool, unreachable controller)."""

EXIT_OK, EXIT_FOUND, EXIT_ERROR = 0, 1, 2
