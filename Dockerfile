# syntax=docker/dockerfile:1
# The lane-side appliance image (docs/OPERATIONS.md). Two stages from the same pinned base:
#   builder: makes wheels of the appliance and every pinned dependency, installs them once and prepares
#            the model store (`appliance models prepare`: models that ship inside wheels are copied in);
#   runtime: the same base with only the runtime libraries, the wheels installed without any index,
#            the prepared models copied in, a dedicated non-root user. No compiler, no pip cache.
# Build: docker build -t gate-appliance:$(git describe) .   (pin the base by digest at your site:
#        --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest from your registry>)
# Run:   docker run -v /etc/gate-appliance:/etc/gate-appliance:ro -v gate-data:/var/lib/gate-appliance \
#          -p 127.0.0.1:8080:8080 gate-appliance:TAG   (lane.yaml: web.host 0.0.0.0 inside the container)
# Linted by hadolint (.hadolint.yaml) in tests/unit/test_dockerfile.py.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORT_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False \
    GATE_MODELS_DIR=/opt/gate-appliance/models
# Build tools only here: a dependency published as an sdist (face_recognition_models) is built into a wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libzbar0 libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY appliance ./appliance
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels gate-appliance
COPY models /opt/gate-appliance/models
RUN /opt/venv/bin/appliance models prepare

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORT_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False \
    GATE_MODELS_DIR=/opt/gate-appliance/models PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzbar0 libgl1 libglib2.0-0 fonts-wqy-zenhei fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gate \
    && useradd --system --uid 10001 --gid gate --home-dir /var/lib/gate-appliance --shell /usr/sbin/nologin gate \
    && install -d -o gate -g gate -m 0750 /var/lib/gate-appliance
# The wheels are mounted from the builder for this one step, never copied into a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels gate-appliance
COPY --from=builder /opt/gate-appliance/models /opt/gate-appliance/models
COPY configs /opt/gate-appliance/configs
WORKDIR /var/lib/gate-appliance
USER 10001:10001
VOLUME ["/var/lib/gate-appliance"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["appliance"]
CMD ["run", "--config", "/etc/gate-appliance/lane.yaml"]
