"""asv benchmarks (timing, peak memory, tracked accuracy) and standalone benchmark scripts."""
