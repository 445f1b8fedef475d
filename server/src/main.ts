/** Entry point: `npm start`. Config from the environment (see README), graceful shutdown on SIGTERM/SIGINT. */
import { pino } from "pino";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { startEventbank } from "./eventbank.js";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`eventbank: invalid configuration: ${error.message}\n`);
  process.exit(2);
}

const logger = pino({ level: config.logLevel, base: { service: "eventbank" } });

try {
  const eventbank = await startEventbank(config, logger);
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
  logger.fatal({ err: error }, "eventbank failed to start");
  process.exit(1);
}
