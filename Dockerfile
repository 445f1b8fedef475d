# syntax=docker/dockerfile:1
# eventbank gRPC server. Build: docker build -t eventbank .
# Run against EventStoreDB: see docker-compose.yml.

# ---- build: install dependencies, compiling better-sqlite3's native addon.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests first, so the dependency layer is cached until they change.
COPY package.json package-lock.json ./
COPY client/package.json client/package.json
# Runtime dependencies only (the server runs its TypeScript through tsx, a dependency);
# buf, ts-proto, vitest and the like stay out of the image.
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY proto proto
COPY client client
COPY server server

# ---- runtime: no compilers, no package manager cache, non-root.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    EVENTBANK_STORE=esdb \
    HOST=0.0.0.0 \
    PORT=50051
WORKDIR /app
COPY --from=build --chown=node:node /app /app
# The SQLite store (EVENTBANK_STORE=sqlite) writes here.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 50051
# SIGTERM goes straight to node (exec form), which shuts down gracefully.
CMD ["node", "--import", "tsx", "server/src/main.ts"]
