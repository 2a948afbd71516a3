//! rekindle: hot-reload for Kubernetes ConfigMap and Secret volumes.
