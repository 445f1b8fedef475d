/**
 * Puts the observability pieces together for eventbank.ts: metrics (on
 * unless EVENTBANK_METRICS_PORT=0), tracing (on when OTEL_* says so), and
 * the hooks each layer takes.
 */
import type { ServiceDefinition } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CommandHooks } from "../app/command-hooks.js";
import type { Config } from "../config.js";
import type { EventStore } from "../store/event-store.js";
import { createCommandObserver } from "./command-observer.js";
import { MeteredEventStore } from "./metered-event-store.js";
import { createMetrics, initializeGrpcMetrics, type GrpcType, type Metrics } from "./metrics.js";
import { startMetricsServer, type MetricsServer } from "./metrics-server.js";
import { createRpcObserver, type RpcObserver } from "./rpc-observer.js";
import { SubscriptionLag } from "./subscription-lag.js";
import { startTracing, type Tracing } from "./tracing.js";

export interface Observability {
  metrics: Metrics | undefined;
  rpcObserver: RpcObserver | undefined;
  commandHooks: CommandHooks | undefined;
  /** For SqliteEventStoreOptions.onGroupCommit. */
  onGroupCommit: ((appends: number) => void) | undefined;
  /** The store as the application should see it (metered when metrics are on). */
  wrapStore(store: EventStore): EventStore;
  /** Starts the /metrics listener (when metrics are on). */
  listen(): Promise<MetricsServer | undefined>;
  /** Closes the listener and exports the spans still buffered. */
  close(): Promise<void>;
}

/** The methods of a grpc-js service definition, with go-grpc-prometheus's grpc_type. */
export function methodsOf(definition: ServiceDefinition): Array<{ name: string; type: GrpcType }> {
  return Object.values(definition).map((method) => ({
    name: method.path.slice(method.path.lastIndexOf("/") + 1),
    type: method.requestStream ? (method.responseStream ? "bidi_stream" : "client_stream") : method.responseStream ? "server_stream" : "unary",
  }));
}

export function createObservability(config: Config, logger: Logger, service: { name: string; methods: Array<{ name: string; type: GrpcType }> }): Observability {
  const lag = new SubscriptionLag();
  const metrics = config.metricsPort === 0 ? undefined : createMetrics({ subscriptionLag: () => lag.largest() });
  if (metrics) initializeGrpcMetrics(metrics, service.name, service.methods);
  const tracing: Tracing | undefined = config.tracing && startTracing(config.tracing);
  if (config.tracing) logger.info({ exporter: config.tracing.exporter, endpoint: config.tracing.endpoint, sampler: config.tracing.sampler }, "tracing on");
  let server: MetricsServer | undefined;
  return {
    metrics,
    rpcObserver: metrics || tracing ? createRpcObserver(service.name, metrics, tracing) : undefined,
    commandHooks: metrics || tracing ? createCommandObserver(metrics, tracing) : undefined,
    onGroupCommit: metrics && ((appends) => metrics.store.groupCommitSize.observe(appends)),
    wrapStore: (store) => (metrics ? new MeteredEventStore(store, metrics, lag) : store),
    listen: async () => {
      if (!metrics) return undefined;
      server = await startMetricsServer(metrics.registry, config.metricsHost, config.metricsPort);
      logger.info({ address: server.address, path: "/metrics" }, "metrics listening");
      return server;
    },
    close: async () => {
      await server?.close();
      await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, "spans not exported at shutdown"));
    },
  };
}
