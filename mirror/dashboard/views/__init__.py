"""The dashboard's pages, one module per view, each with its HTML routes and `/api/` twins."""
