# anywire in a container (docs/deployment.md): the image serves examples.chat:aw; to serve
# your application, copy its module in and pass MODULE:ATTR, e.g.
#   docker build -t chat . && docker run --rm -p 8000:8000 -e ANYWIRE_SECRET=... chat chat:aw
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY anywire ./anywire
# [metrics]: prometheus-client, for --metrics prometheus / --metrics-port.
RUN pip install --no-cache-dir '.[metrics]' && rm -rf anywire
COPY examples ./examples

# Unprivileged; anywire serve is PID 1 and drains on SIGTERM (docker stop, Kubernetes).
USER nobody
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["anywire", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["examples.chat:aw"]
