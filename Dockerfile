# syntax=docker/dockerfile:1
# One image for every TimeStore role: `timestore node` (the database) and `timestore operator`.
#
#   docker build -t timestore .
#   docker run -p 5001:5001 -v ts-data:/data timestore node --id n1
#
# Stage 1 builds with a full toolchain (better-sqlite3 compiles from source when no prebuilt binary
# matches); stage 2 is slim, runs as a non-root user, and holds only production dependencies.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# Dependencies first (cached while only sources change). Scripts are skipped here because
# `prepare` builds the sources, which are not copied yet; better-sqlite3 is built right after.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    TIMESTORE_LISTEN=0.0.0.0:5001 \
    TIMESTORE_DATA_DIR=/data
WORKDIR /app
# A fixed non-root uid/gid so Kubernetes securityContext (runAsNonRoot, fsGroup) can match it.
RUN groupadd --system --gid 10001 timestore \
 && useradd --system --uid 10001 --gid timestore --home-dir /app --shell /usr/sbin/nologin timestore \
 && mkdir -p /data \
 && chown timestore:timestore /data
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
RUN chmod 0755 dist/cmd/timestore.js \
 && ln -s /app/dist/cmd/timestore.js /usr/local/bin/timestore
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5001
# Docker-only health check (Kubernetes uses the chart's probes instead).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TIMESTORE_LISTEN||'0.0.0.0:5001').split(':').pop()+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node runs as PID 1 and handles SIGTERM itself (graceful shutdown); `docker run --init` is optional.
ENTRYPOINT ["timestore"]
CMD ["node"]
