"""Connector plugins (chain node protocols), one package per gost connector name."""
