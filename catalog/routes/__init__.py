"""The API's routers: the catalogue, the exchange (requests, grants, demands), administration."""
