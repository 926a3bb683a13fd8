"""The HTTP server: a FastAPI app over the Pipeline, its limits, job store and page.

Build it with :func:`pixelground.serve.app.factory.create_app`; ``pixelground serve`` runs
it with uvicorn.
"""
