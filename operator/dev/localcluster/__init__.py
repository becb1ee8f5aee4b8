"""A real Kubernetes control plane with KWOK-simulated nodes, driven by kwokctl (and kind for users with Docker)."""
