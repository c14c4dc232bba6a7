# One image for every spanline service; compose.yaml picks the command (api, consumer, executor, migrate).
FROM python:3.11-slim
WORKDIR /app
# bubblewrap isolates code nodes (SPEC §5); without it the executor refuses to run them.
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-cache-dir -e .
ENV SPANLINE_SCHEMAS_DIR=/app/schemas
ENTRYPOINT ["spanline"]
CMD ["api", "--host", "0.0.0.0"]
