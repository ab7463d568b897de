# syntax=docker/dockerfile:1
# fracture-service images (docs/deploy.md). Two targets, one code base:
#   cpu  Node 20 on Debian, WASM backend:       docker build --target cpu -t fracture-service:cpu .
#   gpu  Node 20 on CUDA 11.2 + cuDNN 8.1,
#        @tensorflow/tfjs-node-gpu built in:     docker build --target gpu -t fracture-service:gpu .
# Both run `node bin/fracture-service.js <command>` (api, worker, start, ...) as the same non-root
# user (uid 10001), so an API on the cpu image and workers on the gpu image share one DATA_DIR volume.
# Nothing is downloaded when a container runs: every package and native library is in the image.

# The Node runtime of both targets: the gpu target copies its binary from here, so the two run the
# same Node version.
ARG NODE_IMAGE=node:20-bookworm-slim
# @tensorflow/tfjs-node-gpu 4.x links libtensorflow 2.9, built for CUDA 11.2 and cuDNN 8.1.
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

FROM ${NODE_IMAGE} AS node

# ---------------------------------------------------------------------------------------------------
# deps: production dependencies exactly as package-lock.json says, devDependencies omitted. No
# install script runs here: the cpu target needs none (esbuild, sharp and msgpackr find their
# prebuilt platform packages without them), and tfjs-node-gpu's script, which downloads
# libtensorflow, runs in gpu-deps on the gpu target's own base instead.
FROM node AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------------------------------------------
# cpu: the API, and workers on hosts without a GPU (WASM backend: XNNPACK + SIMD).
FROM node AS cpu
# A sans-serif font for the PNG charts (sharp renders their SVG with fontconfig).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fracture \
 && useradd --system --uid 10001 --gid fracture --create-home --home-dir /home/fracture --shell /usr/sbin/nologin fracture \
 && mkdir -p /data \
 && chown fracture:fracture /data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# tfjs-node-gpu is an optionalDependency; without its native library it is dead weight here, and
# FRACTURE_BACKEND=auto would log a failed attempt to load it on every start.
RUN rm -rf node_modules/@tensorflow/tfjs-node-gpu
COPY package.json package-lock.json tsconfig.json openapi.yaml ./
COPY bin ./bin
COPY src ./src
# Container defaults; every one is a variable of src/infra/config.ts. NODE_ENV is deliberately not
# set: nothing in the service branches on it.
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    WORKER_METRICS_PORT=9091 \
    FRACTURE_BACKEND=wasm
# A new named volume takes this directory's owner (fracture), so the non-root user can write to it.
VOLUME /data
# 8080: the API (PORT); 9091: a worker's own /metrics (WORKER_METRICS_PORT).
EXPOSE 8080 9091
USER 10001:10001
# No curl in the image: Node's fetch. Healthy when the API answers /healthz on PORT (api, start) or a
# worker answers /metrics on WORKER_METRICS_PORT (worker); compose checks each role precisely.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const probe=(port,path)=>fetch('http://127.0.0.1:'+port+path,{signal:AbortSignal.timeout(4000)}).then(r=>r.ok,()=>false);Promise.all([probe(process.env.PORT||8080,'/healthz'),probe(process.env.WORKER_METRICS_PORT||9091,'/metrics')]).then(ok=>process.exit(ok.includes(true)?0:1))"]
ENTRYPOINT ["node", "bin/fracture-service.js"]
CMD ["api"]

# ---------------------------------------------------------------------------------------------------
# gpu-base: the CUDA runtime with the Node binary of the node stage, the font and the same user.
FROM ${CUDA_IMAGE} AS gpu-base
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# Ubuntu's own repositories only: nothing is needed from NVIDIA's (the CUDA libraries must stay the
# base image's), and older CUDA images carry a signing key NVIDIA has since rotated, which would fail
# `apt-get update`.
RUN rm -f /etc/apt/sources.list.d/cuda*.list /etc/apt/sources.list.d/nvidia-ml*.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fracture \
 && useradd --system --uid 10001 --gid fracture --create-home --home-dir /home/fracture --shell /usr/sbin/nologin fracture \
 && mkdir -p /data \
 && chown fracture:fracture /data

# ---------------------------------------------------------------------------------------------------
# gpu-deps: runs tfjs-node-gpu's install script, which downloads libtensorflow (GPU, for CUDA 11.2)
# and its prebuilt binding, or compiles the binding with node-gyp when no prebuilt one fits.
FROM gpu-base AS gpu-deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY --from=deps /app/package.json /app/package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
# npm 10 (Node 20's) runs dependency install scripts unless --ignore-scripts. npm 11 checks them
# against an allowScripts policy (11.19 still runs unreviewed ones with a warning; --strict-allow-scripts
# and later releases block them), which a project rebuild reads from package.json, else .npmrc, and
# never from --allow-scripts or npm_config_allow_scripts (EALLOWSCRIPTS). The .npmrc entry approves
# exactly this package (npm 10 only warns about the unknown key). The checks fail the build when no
# binding or libtensorflow came out: a failed or skipped script of an optional dependency (e.g. a
# `false` for it in package.json's allowScripts) would otherwise pass unnoticed.
RUN echo 'allow-scripts=@tensorflow/tfjs-node-gpu' > .npmrc \
 && npm rebuild @tensorflow/tfjs-node-gpu --foreground-scripts \
 && find node_modules/@tensorflow/tfjs-node-gpu/lib -name tfjs_binding.node | grep -q . \
 && find node_modules/@tensorflow/tfjs-node-gpu -name 'libtensorflow.so*' | grep -q . \
 && rm .npmrc

# ---------------------------------------------------------------------------------------------------
# gpu: training and inference workers on an NVIDIA GPU (needs the NVIDIA Container Toolkit on the host).
FROM gpu-base AS gpu
WORKDIR /app
COPY --from=gpu-deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json openapi.yaml ./
COPY bin ./bin
COPY src ./src
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    WORKER_METRICS_PORT=9091 \
    FRACTURE_BACKEND=tensorflow
VOLUME /data
EXPOSE 8080 9091
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const probe=(port,path)=>fetch('http://127.0.0.1:'+port+path,{signal:AbortSignal.timeout(4000)}).then(r=>r.ok,()=>false);Promise.all([probe(process.env.PORT||8080,'/healthz'),probe(process.env.WORKER_METRICS_PORT||9091,'/metrics')]).then(ok=>process.exit(ok.includes(true)?0:1))"]
ENTRYPOINT ["node", "bin/fracture-service.js"]
CMD ["worker"]
