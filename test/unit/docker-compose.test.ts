/**
 * No Docker engine runs here, so the container setup is checked as data:
 * the compose files parse and wire what the server needs, and the
 * Dockerfile builds in stages, runs compiled code as a non-root user who
 * cannot write it, starts with its defaults and has a gRPC HEALTHCHECK.
 * What the image runs is itself run elsewhere: test/e2e/server-process.test.ts
 * starts `node dist/server/src/main.js` and the HEALTHCHECK script.
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../../server/src/config.js";

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string; interval?: string; retries?: number };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const load = (file: string): Compose => parse(readFileSync(file, "utf8"), { merge: true }) as Compose;

describe("docker-compose.yml (development)", () => {
  const compose = load("docker-compose.yml");
  const eventstore = compose.services.eventstore!;
  const server = compose.services.server!;

  it("runs EventStoreDB 24.10 as an insecure single node without projections, on disk", () => {
    expect(eventstore.image).toMatch(/^(eventstore\/eventstore:24\.10|docker\.kurrent\.io\/kurrent-latest\/kurrentdb)/);
    expect(eventstore.environment).toMatchObject({
      EVENTSTORE_INSECURE: "true",
      EVENTSTORE_RUN_PROJECTIONS: "None",
      EVENTSTORE_MEM_DB: "false",
    });
    expect(eventstore.ports).toContain("2113:2113");
  });

  it("keeps EventStoreDB data on a named volume", () => {
    const data = eventstore.volumes?.find((v) => v.endsWith(":/var/lib/eventstore"));
    expect(data).toBeDefined();
    const volume = data!.split(":")[0]!;
    expect(compose.volumes).toHaveProperty(volume);
  });

  it("health-checks EventStoreDB on /health/live", () => {
    const test = [eventstore.healthcheck?.test ?? []].flat().join(" ");
    expect(test).toContain("http://localhost:2113/health/live");
    expect(eventstore.healthcheck?.retries).toBeGreaterThan(0);
  });

  it("builds the server from the Dockerfile and starts it once the store is healthy", () => {
    expect(server.build).toBe(".");
    expect(server.depends_on?.eventstore?.condition).toBe("service_healthy");
    expect(server.environment).toMatchObject({
      EVENTBANK_STORE: "esdb",
      EVENTSTORE_CONNECTION_STRING: "esdb://eventstore:2113?tls=false",
      HOST: "0.0.0.0",
      // The server refuses plaintext on a non-loopback address unless told.
      EVENTBANK_ALLOW_INSECURE: "true",
    });
    expect(server.ports).toContain("50051:50051");
  });
});

describe("docker-compose.cluster.yml (production-like)", () => {
  const compose = load("docker-compose.cluster.yml");
  const nodes = Object.entries(compose.services).filter(([name]) => /^node\d\.eventstore$/.test(name));

  it("runs three secure EventStoreDB nodes that seed each other's gossip", () => {
    expect(nodes).toHaveLength(3);
    for (const [, node] of nodes) {
      expect(node.image).toBe("eventstore/eventstore:24.10");
      expect(node.environment?.EVENTSTORE_CLUSTER_SIZE).toBe("3");
      expect(node.environment).not.toHaveProperty("EVENTSTORE_INSECURE");
      expect(node.environment?.EVENTSTORE_CERTIFICATE_FILE).toMatch(/^\/certs\/node\d\/node\.crt$/);
      expect(node.environment?.EVENTSTORE_GOSSIP_SEED?.split(",")).toHaveLength(2);
      expect(node.volumes?.some((v) => v.endsWith(":/var/lib/eventstore"))).toBe(true);
      expect([node.healthcheck?.test ?? []].flat().join(" ")).toContain("/health/live");
    }
  });

  it("points the server at every node over TLS and waits for all of them", () => {
    const server = compose.services.server!;
    const connection = server.environment!.EVENTSTORE_CONNECTION_STRING!;
    expect(connection).toMatch(/^esdb:\/\//);
    expect(connection).toContain("tls=true");
    expect(connection.split("?")[0]!.split(",")).toHaveLength(3);
    for (const [name] of nodes) expect(server.depends_on?.[name]?.condition).toBe("service_healthy");
    expect(server.environment?.EVENTBANK_STORE).toBe("esdb");
  });

  it("serves TLS and never falls back to the image's plaintext default", () => {
    const server = compose.services.server!;
    expect(server.environment?.EVENTBANK_TLS_CERT_FILE).toMatch(/^\/certs\//);
    expect(server.environment?.EVENTBANK_ALLOW_INSECURE).toBe("false");
  });
});

/** Dockerfile instructions with continuation lines joined and comments dropped, split into stages. */
function dockerfileStages(text: string): string[][] {
  const instructions: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const instruction = (pending + line).trim();
    pending = "";
    if (instruction) instructions.push(instruction);
  }
  const stages: string[][] = [];
  for (const instruction of instructions) {
    if (/^FROM\s/i.test(instruction)) stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

/** `ENV A=1 B=2` lines of a stage as one record. */
function stageEnv(stage: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stage.filter((l) => /^ENV\s/i.test(l))) {
    for (const pair of line.replace(/^ENV\s+/i, "").split(/\s+/)) {
      const [name, ...value] = pair.split("=");
      env[name!] = value.join("=");
    }
  }
  return env;
}

/** The JSON (exec) form of CMD or HEALTHCHECK ... CMD, as an argv. */
function execForm(instruction: string): string[] {
  const json = instruction.slice(instruction.indexOf("["));
  return JSON.parse(json) as string[];
}

describe("Dockerfile", () => {
  const stages = dockerfileStages(readFileSync("Dockerfile", "utf8"));
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const runtimeText = runtime.join("\n");
  const env = stageEnv(runtime);

  it("builds in stages on node:20-bookworm-slim, compiling in the first and keeping only production dependencies", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]).toMatch(/^FROM node:20-bookworm-slim\b/);
    const buildText = build.join("\n");
    expect(buildText).toMatch(/python3.*make.*g\+\+/);
    expect(buildText).toMatch(/npm ci\b/);
    expect(buildText).toMatch(/npm run build:server\b/);
    expect(buildText).toMatch(/npm prune --omit=dev\b/);
    expect(runtimeText).toMatch(/COPY --from=build/);
    // The build script the image runs exists, and so do the files it copies in.
    expect(JSON.parse(readFileSync("package.json", "utf8")).scripts["build:server"]).toBeDefined();
    for (const copy of build.filter((line) => /^COPY\s/i.test(line))) {
      const sources = copy.split(/\s+/).slice(1, -1).filter((part) => !part.startsWith("--"));
      for (const source of sources) expect(existsSync(source), `${copy}: ${source}`).toBe(true);
    }
  });

  it("runs compiled JavaScript with node, with no TypeScript loader in the image", () => {
    const cmd = execForm(runtime.at(-1)!);
    expect(runtime.at(-1)).toMatch(/^CMD \[/); // exec form: SIGTERM reaches node
    expect(cmd[0]).toBe("node");
    expect(cmd.at(-1)).toBe("dist/server/src/main.js");
    expect(cmd.join(" ")).not.toMatch(/tsx|ts-node|--import|--loader|--experimental-strip-types|\.ts\b/);
    expect(runtimeText).not.toMatch(/tsx|ts-node/);
    // dist/server/src/main.js is what tsconfig.build.json makes of server/src/main.ts.
    expect(existsSync("server/src/main.ts")).toBe(true);
    const buildConfig = JSON.parse(readFileSync("tsconfig.build.json", "utf8").replace(/^\s*\/\/.*$/gm, "")) as { include: string[]; compilerOptions: { outDir: string; rootDir: string } };
    expect(buildConfig.compilerOptions).toMatchObject({ outDir: "dist", rootDir: "." });
    expect(buildConfig.include).toContain("server/src");
    // Production installs (npm ci/prune --omit=dev) bring no loader either.
    const { dependencies } = JSON.parse(readFileSync("package.json", "utf8")) as { dependencies: Record<string, string> };
    expect(Object.keys(dependencies)).not.toContain("tsx");
    expect(Object.keys(dependencies)).not.toContain("typescript");
  });

  it("starts with its defaults: the embedded store on the /app/data volume, all interfaces, plaintext explicitly allowed", () => {
    expect(env).toMatchObject({
      EVENTBANK_STORE: "sqlite",
      EVENTBANK_SQLITE_PATH: "/app/data/eventbank.sqlite",
      HOST: "0.0.0.0",
      PORT: "50051",
      EVENTBANK_ALLOW_INSECURE: "true",
    });
    // The server's own validation accepts these defaults as they are...
    const config = loadConfig(env);
    expect(config).toMatchObject({ store: "sqlite", host: "0.0.0.0", port: 50051, sqlitePath: "/app/data/eventbank.sqlite" });
    // ...and refuses them without the explicit allowance (plaintext on a non-loopback address).
    expect(() => loadConfig({ ...env, EVENTBANK_ALLOW_INSECURE: "false" })).toThrow(/HOST=0\.0\.0\.0/);
    const volume = runtime.find((line) => /^VOLUME\s/i.test(line));
    expect(volume && execForm(volume)).toEqual(["/app/data"]);
    expect(runtimeText).toContain("EXPOSE 50051");
  });

  it("runs as a non-root user who can write the data volume but not the code", () => {
    const users = runtime.filter((line) => /^USER\s/i.test(line));
    expect(users).toHaveLength(1);
    const user = users[0]!.split(/\s+/)[1]!;
    expect(user).not.toMatch(/^(root|0)(:.*)?$/);
    // The code comes in owned by root (no --chown / --chmod), so that user cannot change it.
    const copies = runtime.filter((line) => /^COPY\s/i.test(line));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(copy).not.toMatch(/--chown|--chmod/);
    // Only the data folder is handed over, before VOLUME (later changes to a volume path are discarded) and before USER.
    const chowns = runtime.filter((line) => /\bchown\b|\bchmod\b/.test(line));
    expect(chowns).toEqual([expect.stringMatching(new RegExp(`mkdir -p /app/data && chown ${user}:${user} /app/data$`))]);
    const index = (pattern: RegExp) => runtime.findIndex((line) => pattern.test(line));
    expect(index(/chown/)).toBeLessThan(index(/^VOLUME\s/));
    expect(index(/^VOLUME\s/)).toBeLessThan(index(/^USER\s/));
  });

  it("has a HEALTHCHECK that asks grpc.health.v1 through a node script built into dist/", () => {
    const healthchecks = runtime.filter((line) => /^HEALTHCHECK\s/i.test(line));
    expect(healthchecks).toHaveLength(1);
    const probe = execForm(healthchecks[0]!.slice(healthchecks[0]!.indexOf(" CMD ")));
    expect(probe).toEqual(["node", "dist/server/src/healthcheck.js"]);
    const source = readFileSync("server/src/healthcheck.ts", "utf8");
    expect(source).toMatch(/from "grpc-health-check"/);
    expect(source).toContain("/grpc.health.v1.Health/Check");
    expect(healthchecks[0]).toMatch(/--interval=\d+s/);
    expect(healthchecks[0]).toMatch(/--timeout=\d+s/);
  });

  it("is paired with a .dockerignore that keeps node_modules, local data, build output and secrets out of the context", () => {
    const ignored = readFileSync(".dockerignore", "utf8").split("\n").map((line) => line.trim());
    for (const entry of ["node_modules", ".git", "data", "dist", "eventbank-api-keys.json"]) expect(ignored).toContain(entry);
  });
});
