"""The operator's runtime: live cluster view, workflow progress, pod manifests, placement and binding."""
