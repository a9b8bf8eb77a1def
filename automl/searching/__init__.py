"""What a search tries and how it is decided before it runs: search spaces (`spaces`), the
searchers (`searchers`, every one an Optuna sampler), ultralytics' plain training resolved
(`baseline`), and flags + data + space -> a plan (`planning`)."""
