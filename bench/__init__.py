"""The netns + iperf3 bench rig: `make bench` (bench.run) and `make demo` (bench.demo); see README.md."""
