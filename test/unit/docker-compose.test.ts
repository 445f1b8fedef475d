/**
 * No Docker engine runs here, so the container setup is checked as data:
 * the compose files parse and wire what the server needs, and the
 * Dockerfile builds in stages and runs as a non-root user.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

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
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync("Dockerfile", "utf8");
  const instructions = dockerfile
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  const froms = instructions.filter((line) => /^FROM\s/i.test(line));

  it("builds in stages on node:20-bookworm-slim", () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:20-bookworm-slim\b/);
    expect(dockerfile).toMatch(/npm ci --omit=dev\b/);
    expect(dockerfile).toMatch(/python3.*make.*g\+\+/);
    expect(dockerfile).toMatch(/COPY --from=build/);
  });

  it("runs as a non-root user in the final stage, serving gRPC on 50051", () => {
    const lastStage = instructions.slice(instructions.lastIndexOf(froms.at(-1)!));
    const user = lastStage.find((line) => /^USER\s/i.test(line));
    expect(user).toBeDefined();
    expect(user!.split(/\s+/)[1]).not.toMatch(/^(root|0)(:.*)?$/);
    expect(lastStage).toContain("EXPOSE 50051");
    expect(lastStage.join("\n")).toMatch(/EVENTBANK_STORE=esdb/);
    expect(lastStage.join("\n")).toMatch(/HOST=0\.0\.0\.0/);
    expect(lastStage.at(-1)).toMatch(/^CMD \[.*tsx.*server\/src\/main\.ts/);
  });

  it("is paired with a .dockerignore that keeps node_modules and local data out of the context", () => {
    const ignored = readFileSync(".dockerignore", "utf8").split("\n").map((line) => line.trim());
    expect(ignored).toContain("node_modules");
    expect(ignored).toContain(".git");
    expect(ignored).toContain("data");
  });
});
