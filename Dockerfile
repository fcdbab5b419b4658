# syntax=docker/dockerfile:1
# ce-audit-gateway: one container, two ports (8080 the Code Engine API, 9090 admin), spool and journal on a volume.

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
# Inside the pod's network namespace; kubelet probes reach the admin port on the pod IP. Set ADMIN_TOKEN to
# protect /metrics.
# glibc malloc: blocks of 128 KiB and more are mapped and unmapped on their own, and free memory at the top of
# the heap is given back past 128 KiB, instead of both thresholds rising with the largest block freed so far
# (delivery bodies, spool reads): peak RSS 8-10 MB lower under load (README, Memory).
ENV MALLOC_MMAP_THRESHOLD_=131072
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    ADMIN_HOST=0.0.0.0 \
    PORT=8080 \
    ADMIN_PORT=9090 \
    AT_FILE_DIR=/var/lib/ce-audit-gateway/audit \
    SPOOL_DIR=/var/lib/ce-audit-gateway/spool
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/schemas ./schemas
# ce-audit, the auditor's command: docker run --rm -v "$PWD:/trail" <image> node bin/ce-audit.js verify ... /trail
COPY bin ./bin
RUN mkdir -p /var/lib/ce-audit-gateway/audit /var/lib/ce-audit-gateway/spool && chown -R node:node /var/lib/ce-audit-gateway
USER node
VOLUME ["/var/lib/ce-audit-gateway"]
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.ADMIN_PORT||9090)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/gateway.js"]
