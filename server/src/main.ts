/**
 * Entry point: `npm start` (compiled: `node dist/server/src/main.js`). Config from the environment
 * (see README), graceful shutdown on SIGTERM/SIGINT. A setting the server cannot run with (a bad
 * value, an SQLite path it cannot write, a port in use) ends it with one JSON log line naming the
 * variable, and exit code 2; any other start-up failure exits 1.
 */
import { setLogger } from "@grpc/grpc-js";
import { pino, type Logger } from "pino";
import { checkSqlitePath, ConfigError, loadConfig, type Config } from "./config.js";
import { startEventbank } from "./eventbank.js";

// Every line on stdout is JSON: the level follows LOG_LEVEL once the configuration is read.
const logger = pino({ level: "info", base: { service: "eventbank" } });
const grpcLog = routeGrpcLogs(logger.child({ component: "grpc-js" }));

let config: Config;
try {
  config = loadConfig();
  logger.level = config.logLevel;
  if (config.store === "sqlite") checkSqlitePath(config.sqlitePath);
} catch (error) {
  exitOnConfigError(error);
}

try {
  const eventbank = await startEventbank(config, logger);
  grpcLog.started();
  logger.info(
    { address: eventbank.server.address, store: config.store, ...(config.store === "sqlite" ? { sqlitePath: config.sqlitePath } : {}) },
    "eventbank listening",
  );
  let signalled = false;
  const stop = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, "shutting down");
    eventbank.stop().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (error) {
  exitOnConfigError(startupConfigError(error, config) ?? error);
}

function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    logger.fatal({ variable: error.variable, value: error.value, reason: error.reason }, `invalid configuration: ${error.message}`);
    process.exit(2);
  }
  logger.fatal({ err: error }, "eventbank failed to start");
  process.exit(1);
}

/** A start-up failure that a setting causes and can fix, as the ConfigError naming that setting. */
function startupConfigError(error: unknown, config: Config): ConfigError | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const cause = /\[(.*)\]$/.exec(message)?.[1] ?? message; // grpc-js: "No address added out of total 1 resolved errors: [listen EADDRINUSE: ...]"
  if (/\bEADDRINUSE\b/.test(message)) return new ConfigError("PORT", String(config.port), `address already in use on ${config.host} (${cause})`);
  if (/\bEACCES\b/.test(message)) return new ConfigError("PORT", String(config.port), `not allowed to listen on ${config.host} (${cause})`);
  if (/\b(EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN)\b|Name resolution failed/.test(message)) {
    return new ConfigError("HOST", config.host, `cannot listen on this address (${cause})`);
  }
  if (config.store === "sqlite" && error instanceof Error && error.name === "StoreUnavailableError") {
    return new ConfigError("EVENTBANK_SQLITE_PATH", config.sqlitePath, message);
  }
  return undefined;
}

/**
 * grpc-js logs through console.error by default, a plain-text line beside pino's JSON. Its lines
 * go to pino instead; during start-up they are held back, since a failure there (a port in use)
 * is logged once, by exitOnConfigError, and they are written only when the server starts.
 */
function routeGrpcLogs(log: Logger): { started(): void } {
  let held: Array<() => void> | undefined = [];
  const write = (emit: () => void) => (held ? held.push(emit) : emit());
  const line = (args: unknown[]) => args.map(String).join(" ");
  setLogger({
    error: (...args: unknown[]) => write(() => log.error(line(args))),
    info: (...args: unknown[]) => write(() => log.info(line(args))),
    debug: (...args: unknown[]) => write(() => log.debug(line(args))),
  });
  return {
    started() {
      const pending = held ?? [];
      held = undefined;
      for (const emit of pending) emit();
    },
  };
}
