"""Suite files (TOML), installed as `mrbench.datasets`."""
