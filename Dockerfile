# refmgr: one image for web (gunicorn), the Celery worker, beat and the one-shot migrate job.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REFMGR_VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install .

COPY . .

# Static files are collected at build time (whitenoise serves them, compressed and hashed).
# The settings need production values to load; these are placeholders for the build only.
RUN DJANGO_ENV=production \
    SECRET_KEY=build-only-placeholder-not-used-at-run-time-0123456789abcdef \
    ALLOWED_HOSTS=build.invalid \
    EMAIL_URL=console:// \
    python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home-dir /app refmgr \
 && mkdir -p /app/var/media \
 && chown -R refmgr /app/var

USER refmgr
EXPOSE 8000

CMD ["gunicorn", "refmgr.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
