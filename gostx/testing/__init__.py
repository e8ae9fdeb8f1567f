"""Test and bench support: network namespaces, veth links, processes killed by PID."""
