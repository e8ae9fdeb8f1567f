"""Wire formats shared by a protocol's handler (server) and connector (client)."""
