"""Handler plugins, one package per gost handler name."""
