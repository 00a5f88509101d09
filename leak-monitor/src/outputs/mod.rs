//! What leak-monitor produces: Prometheus metrics over HTTP, and reports.
