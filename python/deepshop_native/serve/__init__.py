"""`deepshop serve`: a web page and a versioned HTTP API in front of the engine.

One module per job:

* :mod:`.catalogue` -- which styles and models the server offers, and how each pipeline opens;
* :mod:`.forms` -- a request's multipart body read into memory within the limits, and its fields checked;
* :mod:`.render` -- the work of one request: decode (pixel limit first), stylize, encode to bytes;
* :mod:`.jobs` -- the worker threads, the bounded queue, progress, cancellation, time limit, expiry;
* :mod:`.errors` -- exceptions to HTTP statuses and messages without server paths;
* :mod:`.app` -- the FastAPI application (routes, the page, OpenAPI);
* :mod:`.cli` -- the ``deepshop serve`` subcommand (``register(subparsers)``).

Importing this package (and :mod:`.cli`) needs neither FastAPI nor uvicorn, so that ``deepshop``
works without the ``serve`` extra; :mod:`.app` imports them.
"""
