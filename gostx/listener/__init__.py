"""Listener plugins, one package per gost listener name."""
