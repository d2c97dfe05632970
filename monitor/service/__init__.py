"""Running as a service: the daemon and its jobs, reload, the process lock, systemd, health, metrics and logs."""
