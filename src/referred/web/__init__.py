"""The HTTP service and its page: FastAPI app, routes, uploads, settings, static files.

``create_app(settings)`` builds the app; it reaches the model only through a
:class:`referred.search.Searcher`. Importing this package imports no web framework.
"""
