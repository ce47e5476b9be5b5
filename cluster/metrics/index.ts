// Prometheus metrics and Kubernetes probes of a refresh node.
export { NodeMetrics, type NodeView, type RefreshFacts } from './registry.js';
export { type MetricsServer, type MetricsServerOptions, startMetricsServer } from './server.js';
