"""Talking to the API server: REST calls, the project's labels and names, reading Kubernetes objects."""
