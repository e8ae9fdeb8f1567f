"""Dialer plugins (chain node transports), one package per gost dialer name."""
