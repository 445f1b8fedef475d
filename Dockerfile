# syntax=docker/dockerfile:1
# eventbank gRPC server, running compiled JavaScript (no TypeScript loader at run time).
#   docker build -t eventbank .
#   docker run -p 50051:50051 -v eventbank-data:/app/data eventbank
# The defaults serve plaintext without authentication on all interfaces: see README "Docker".
# Against EventStoreDB: see docker-compose.yml.

# ---- build: all dependencies (TypeScript included; better-sqlite3's native addon
# compiled), compile the server to dist/, then drop the dev dependencies.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests first, so the dependency layer is cached until they change.
COPY package.json package-lock.json ./
COPY client/package.json client/package.json
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts scripts
COPY client client
COPY server server
# The server imports the generated code from client/src/gen by path (compiled into
# dist/ with it), not the workspace package, whose link would dangle in the runtime stage.
RUN npm run build:server \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@eventbank

# ---- runtime: no compilers, no TypeScript, non-root, code read-only for that user.
FROM node:20-bookworm-slim AS runtime
# Defaults that start as they are: the embedded SQLite store on the volume below, all
# interfaces, plaintext allowed (the server refuses plaintext on a non-loopback address
# otherwise). Production: TLS (EVENTBANK_TLS_CERT_FILE/KEY_FILE) and API keys, see README.
ENV NODE_ENV=production \
    EVENTBANK_STORE=sqlite \
    EVENTBANK_SQLITE_PATH=/app/data/eventbank.sqlite \
    HOST=0.0.0.0 \
    PORT=50051 \
    EVENTBANK_ALLOW_INSECURE=true
WORKDIR /app
# Owned by root (no --chown): the runtime user reads the code but cannot change it.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# The only place the runtime user writes; made before VOLUME so a new volume starts with this owner.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 50051
# Asks grpc.health.v1 for bank.v1.AccountService over gRPC (a node script, no extra binary).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/server/src/healthcheck.js"]
# SIGTERM goes straight to node (exec form), which shuts down gracefully.
CMD ["node", "--enable-source-maps", "dist/server/src/main.js"]
