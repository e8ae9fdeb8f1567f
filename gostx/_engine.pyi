"""Type stubs for gostx._engine (the C data plane)."""

ENGINE_ABI: int
