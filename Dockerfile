# Lane-side appliance image: runtime only (no torch), models prepared from the installed wheel.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 ORT_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 \
    GATE_MODELS_DIR=/opt/gate-appliance/models
RUN apt-get update && apt-get install -y --no-install-recommends \
        libzbar0 fonts-wqy-zenhei fonts-dejavu-core libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/gate-appliance
COPY pyproject.toml README.md ./
COPY appliance ./appliance
COPY models ./models
COPY configs ./configs
RUN pip install . && appliance models prepare
EXPOSE 8080
USER nobody
ENTRYPOINT ["appliance"]
CMD ["run", "--config", "/etc/gate-appliance/lane.yaml"]
