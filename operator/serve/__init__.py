"""What runs in the operator's process: the ``operator run`` command and the kube-scheduler extender."""
