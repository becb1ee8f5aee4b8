"""Developer tooling, never imported by the runtime: local control plane, demo, samples, a running operator."""
