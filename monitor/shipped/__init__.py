"""What `monitor init` writes and prints, shipped in the wheel: the starter config.yaml, its example articles,
the systemd unit and its environment file, the service guide (links to the files at the top of the checkout)."""
