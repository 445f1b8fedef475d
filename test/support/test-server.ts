/**
 * Starts the real eventbank in this process on 127.0.0.1 and an ephemeral
 * port, with its log lines captured for assertions.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { loadConfig, type Config } from "../../server/src/config.js";
import { startEventbank, type Eventbank } from "../../server/src/eventbank.js";
import type { EventStore } from "../../server/src/store/event-store.js";

export interface TestServer {
  address: string;
  eventbank: Eventbank;
  config: Config;
  /** Parsed JSON log lines written so far. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** Extra environment, as the server would read it (EVENTBANK_*, ...). */
  env?: Record<string, string>;
  /** Use this store instead of one built from the environment. */
  store?: EventStore;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "eventbank-e2e-"));
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite"),
    LOG_LEVEL: "info",
    EVENTBANK_METRICS_PORT: "0", // off unless a test asks: servers run side by side
    ...options.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logger = pino({ level: config.logLevel }, sink);
  const eventbank = await startEventbank(config, logger, options.store);
  return {
    address: eventbank.server.address,
    eventbank,
    config,
    logs,
    stop: async () => {
      await eventbank.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
